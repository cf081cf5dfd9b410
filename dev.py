#!/usr/bin/env python3
"""The project's two commands, for a fresh machine with only python3 on it.

    python3 dev.py sync [--config secrets/config.json]   # a real sync into DuckDB: the bundled simulator, or Kore.ai
    python3 dev.py test                                  # every test

Both first make `.venv` and install the connector with its test extras into it (again only when setup.py
changed). `sync` also makes `.venv-pyairbyte` with PyAirbyte, DuckDB and matplotlib (again only when
tools/sync-requirements.txt changed): PyAirbyte pins its own airbyte-cdk range, so it gets a venv of its own
and runs the connector from `.venv` as an executable. `test` needs only `.venv`. Standard library only: this
file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Environment:
    """A venv, what to install into it, and the files whose change calls for installing again."""

    path: Path
    install_inputs: tuple[str, ...]
    pip_install_arguments: tuple[str, ...]
    description: str

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ensure(self) -> None:
        """Creates the venv and installs into it, unless that was already done for these install inputs."""
        stamp = self.path / ".installed-from"
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
        digest = hashlib.sha256()
        for name in self.install_inputs:
            digest.update((ROOT / name).read_bytes())
        return digest.hexdigest()


CONNECTOR = Environment(
    path=ROOT / ".venv",
    install_inputs=("setup.py",),
    pip_install_arguments=("--editable", f"{ROOT}[tests]"),
    description="the connector and its test tools",
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
}


def main(argv: list[str]) -> int:
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
