#!/usr/bin/env python3
"""The project's commands, for a fresh machine with only python3 on it.

    python3 dev.py sync [--config secrets/config.json]   # a real sync into DuckDB: the bundled simulator, or Kore.ai
    python3 dev.py test [pytest arguments]               # every test
    python3 dev.py mutate                                # mutation testing of source_callvolume/ (mutmut)
    python3 dev.py lock                                  # regenerate constraints.txt

Each first makes `.venv` and installs the connector with its test extras into it, under the pins of
constraints.txt (again only when setup.py or constraints.txt changed); `mutate` adds the `mutation` extra
(mutmut). `sync` also makes `.venv-pyairbyte` with PyAirbyte, DuckDB and matplotlib (again only when
tools/sync-requirements.txt changed): PyAirbyte pins its own airbyte-cdk range, so it gets a venv of its own
and runs the connector from `.venv` as an executable. `lock` resolves `.[tests,mutation]` afresh in a
throw-away venv and writes the result to constraints.txt. Standard library only: this file runs before
anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / "constraints.txt"
# What constraints.txt pins: every dependency of the connector with all of its extras.
LOCKED_EXTRAS = "tests,mutation"


@dataclass(frozen=True)
class Environment:
    """A venv, what to install into it, and the files whose change calls for installing again.

    Two environments may share a venv (the connector's and mutmut's): each has a stamp file of its own.
    """

    path: Path
    install_inputs: tuple[str, ...]
    pip_install_arguments: tuple[str, ...]
    description: str
    stamp_name: str = ".installed-from"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ensure(self) -> None:
        """Creates the venv and installs into it, unless that was already done for these install inputs."""
        stamp = self.path / self.stamp_name
        fingerprint = self._fingerprint()
        if self.python.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            return
        if not self.python.exists():
            print(f"dev.py: creating {self.path.name}", flush=True)
            venv.EnvBuilder(with_pip=True).create(self.path)
        print(f"dev.py: installing {self.description} into {self.path.name}", flush=True)
        pip = [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *self.pip_install_arguments], check=True)
        stamp.write_text(fingerprint)

    def _fingerprint(self) -> str:
        digest = hashlib.sha256("\0".join(self.pip_install_arguments).encode())
        for name in self.install_inputs:
            digest.update((ROOT / name).read_bytes())
        return digest.hexdigest()


CONNECTOR = Environment(
    path=ROOT / ".venv",
    install_inputs=("setup.py", "constraints.txt"),
    pip_install_arguments=("--constraint", str(CONSTRAINTS), "--editable", f"{ROOT}[tests]"),
    description="the connector and its test tools",
)
MUTATION = Environment(
    path=ROOT / ".venv",
    install_inputs=("setup.py", "constraints.txt"),
    pip_install_arguments=("--constraint", str(CONSTRAINTS), "--editable", f"{ROOT}[tests,mutation]"),
    description="mutmut (the connector's mutation extra)",
    stamp_name=".installed-mutation-from",
)
PYAIRBYTE = Environment(
    path=ROOT / ".venv-pyairbyte",
    install_inputs=("tools/sync-requirements.txt",),
    pip_install_arguments=("--requirement", str(ROOT / "tools" / "sync-requirements.txt")),
    description="PyAirbyte, DuckDB and matplotlib",
)
# command: (module run, the venv it runs in, every venv it needs)
COMMANDS = {
    "sync": ("tools.sync", PYAIRBYTE, (CONNECTOR, PYAIRBYTE)),
    "test": ("tools.test", CONNECTOR, (CONNECTOR,)),
    "mutate": ("tools.mutate", CONNECTOR, (CONNECTOR, MUTATION)),
}
CONSTRAINTS_HEADER = f"""\
# Every dependency of `pip install .[{LOCKED_EXTRAS}]`, pinned: the versions one resolution picked.
# dev.py installs .venv with `--constraint constraints.txt`, and the Dockerfile installs the connector's
# runtime dependencies with it, so that every machine, CI and the image get the same versions.
# unit_tests/test_packaging.py checks that each pin satisfies setup.py.
# Regenerate it (after changing setup.py's requirements, or to move to newer versions) with
#     python3 dev.py lock
# which installs .[{LOCKED_EXTRAS}] into a throw-away venv without constraints and writes
# `pip freeze --exclude source-callvolume` here.
"""


def lock() -> int:
    """Resolves every dependency afresh in a throw-away venv and writes the pins to constraints.txt."""
    with tempfile.TemporaryDirectory(prefix="source-callvolume-lock-") as folder:
        python = Path(folder) / "bin" / "python"
        print(f"dev.py: resolving .[{LOCKED_EXTRAS}] in a fresh venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(folder)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "install", "--quiet", f"{ROOT}[{LOCKED_EXTRAS}]"], check=True)
        frozen = subprocess.run(
            [*pip, "freeze", "--exclude", "source-callvolume"], check=True, capture_output=True, text=True
        ).stdout
    pins = sorted((line for line in frozen.splitlines() if line.strip()), key=str.lower)
    CONSTRAINTS.write_text(CONSTRAINTS_HEADER + "".join(f"{pin}\n" for pin in pins))
    print(f"dev.py: wrote {len(pins)} pins to {CONSTRAINTS.name}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["lock"]:
        return lock()
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    module, runner, needed = COMMANDS[argv[0]]
    for environment in needed:
        environment.ensure()
    environment_variables = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": os.pathsep.join([str(runner.path / "bin"), os.environ.get("PATH", "")]),
    }
    return subprocess.run([str(runner.python), "-m", module, *argv[1:]], cwd=ROOT, env=environment_variables).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
