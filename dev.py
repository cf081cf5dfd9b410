#!/usr/bin/env python3
"""The project's two commands, for a fresh machine with only python3 on it.

    python3 dev.py sync [--config secrets/config.json]   # a real sync: the bundled simulator, or Kore.ai
    python3 dev.py test                                  # every test

Each first makes `.venv` and installs the connector with its test extras into it (again only when setup.py
changed), then runs inside it. Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed-from"
INSTALL_INPUTS = ("setup.py",)


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Creates the venv and installs the connector into it, unless that was already done for this setup.py."""
    fingerprint = _install_fingerprint()
    if VENV_PYTHON.exists() and STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    if not VENV_PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing the connector and its test tools into .venv", flush=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}[tests]"], check=True)
    STAMP.write_text(fingerprint)


def main(argv: list[str]) -> int:
    commands = {"sync": "tools.sync", "test": "tools.test"}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    ensure_environment()
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": os.pathsep.join([str(VENV / "bin"), os.environ.get("PATH", "")]),
    }
    return subprocess.run([str(VENV_PYTHON), "-m", commands[argv[0]], *argv[1:]], cwd=ROOT, env=environment).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
