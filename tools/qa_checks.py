#!/usr/bin/env python3
"""Airbyte's connector QA checks (airbyte-internal-ops 0.132.0), run offline on a copy laid out as Airbyte's monorepo.

    python3 tools/qa_checks.py                    # every check, at support level 300
    python3 tools/qa_checks.py --keep /tmp/qa     # the same, and keep the copy the checks ran on
    python3 tools/qa_checks.py --verbose          # also show what the checks print and log
    python3 tools/qa_checks.py --venv /tmp/qa-venv

Not part of `python3 dev.py test`: it needs airbyte-internal-ops, a large package (about 220 distributions)
that nothing else here uses. On first use the script makes a venv of its own, `.local/qa-venv` (git ignores
.local/), with Python 3.11 or 3.12 (the package's range), installs `airbyte-internal-ops==0.132.0` into it
from the package index and runs itself again there; later runs reuse it. Pip is the only network access. To
make such a venv by hand instead:

    python3.11 -m venv /tmp/qa-venv
    /tmp/qa-venv/bin/pip install airbyte-internal-ops==0.132.0
    python3 tools/qa_checks.py --venv /tmp/qa-venv

What it does, so that the checks see what they would see in Airbyte's monorepo:

- Copies the repository's files (what git tracks plus untracked files it does not ignore, as they are in the
  working tree) to `airbyte-integrations/connectors/source-callvolume/` in a temporary directory, and the
  docs page, docs/source-callvolume.md, to the path `documentationUrl` in metadata.yaml implies,
  `docs/integrations/sources/callvolume.md`.
- Sets `data.ab_internal.sl` in the copy's metadata.yaml to the support level asked for (300 by default: the
  documentation content checks apply from 300 on, the others from 100). The repository's own metadata.yaml
  declares no `ab_internal`: Airbyte sets it.
- Answers the registry look-ups (is this version released? its cloud usage?), Docker Hub's (the latest
  released tag) and GitHub's (metadata.yaml on master, for the version increment check) with "never
  released". The documentation links are not fetched: the check counts a link it cannot reach as valid, and
  this script lists them. Any other connection attempt is refused, and reported.
- Runs every enabled check (`airbyte_ops_mcp.connector_qa.checks.ENABLED_CHECKS`) on the connector from the
  copy's root (the package reads paths relative to the working directory) and prints each check's result
  and message, then a summary.

Four checks fail by design: this project was asked for setup.py and a Dockerfile, so the three Poetry checks
(pyproject.toml, its license, its version) and the Python base image check (no Dockerfile, a
`connectorBuildOptions.baseImage`) cannot pass. They are listed as expected failures. The exit status is 0
when no other check fails or errors, 1 otherwise, 2 when the checks could not be run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airbyte-internal-ops"
PACKAGE_VERSION = "0.132.0"
DEFAULT_VENV = ROOT / ".local" / "qa-venv"
# Set when the script runs itself again in its venv, so that a venv without the package fails instead of looping.
REEXEC_MARKER = "SOURCE_CALLVOLUME_QA_REEXEC"

TECHNICAL_NAME = "source-callvolume"
CONNECTOR_DIRECTORY = Path("airbyte-integrations") / "connectors" / TECHNICAL_NAME
DOCS_PAGE = Path("docs") / "source-callvolume.md"
DOCS_BASE_URL = "https://docs.airbyte.com"
# Never copied, even if git does not ignore them: local environments and caches.
SKIPPED_PARTS = {".git", ".venv", ".venv-pyairbyte", ".local", "mutants", "build", "__pycache__", ".pytest_cache"}

# The checks the layout this project was asked for (setup.py and a Dockerfile) rules out, by class name.
LAYOUT_BOUND_FAILURES = {
    "CheckConnectorUsesPoetry": "no pyproject.toml / poetry.lock: the project uses setup.py",
    "CheckConnectorLicenseMatchInPyproject": "no pyproject.toml to compare the license with",
    "CheckConnectorVersionMatchInPyproject": "no pyproject.toml to compare the version with",
    "CheckConnectorUsesPythonBaseImage": "the image is built from the repository's Dockerfile",
}


# ---------------------------------------------------------------------------------------------------------------
# The venv (standard library only: this part runs before the package is installed).


def _package_is_importable() -> bool:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return False
    try:
        return version(PACKAGE) == PACKAGE_VERSION
    except PackageNotFoundError:
        return False


def _base_python() -> str:
    """A Python the package installs on (it asks for >=3.11,<3.13)."""
    if (3, 11) <= sys.version_info[:2] < (3, 13):
        return sys.executable
    for name in ("python3.11", "python3.12"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(f"qa_checks: {PACKAGE} needs Python 3.11 or 3.12; neither python3.11 nor python3.12 is on PATH")


def _ensure_venv(venv_dir: Path) -> Path:
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / ".installed-qa-package"
    wanted = f"{PACKAGE}=={PACKAGE_VERSION}"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        print(f"qa_checks: creating {venv_dir}", file=sys.stderr, flush=True)
        subprocess.run([_base_python(), "-m", "venv", str(venv_dir)], check=True)
    print(f"qa_checks: installing {wanted} into {venv_dir} (a few minutes the first time)", file=sys.stderr, flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, wanted], check=True)
    stamp.write_text(wanted)
    return python


# ---------------------------------------------------------------------------------------------------------------
# The copy laid out as Airbyte's monorepo.


def _repository_files() -> list[Path]:
    """The files of the working tree that git tracks or would track (untracked, not ignored), relative to ROOT."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout.decode()
        candidates = sorted({Path(name) for name in listed.split("\0") if name})
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked archive, say): every file but the local environments.
        candidates = sorted(path.relative_to(ROOT) for path in ROOT.rglob("*") if path.is_file())
    return [
        path for path in candidates
        if (ROOT / path).is_file() and not SKIPPED_PARTS.intersection(path.parts) and path.suffix != ".pyc"
    ]


def _documentation_path(metadata: dict) -> Path:
    """Where Airbyte's monorepo keeps the docs page: `documentationUrl` without the docs site, under docs/."""
    url = metadata["data"]["documentationUrl"]
    if not url.startswith(DOCS_BASE_URL):
        raise SystemExit(f"qa_checks: documentationUrl {url!r} is not on {DOCS_BASE_URL}: the checks would find no page")
    return Path("docs") / (url[len(DOCS_BASE_URL):].strip("/") + ".md")


def build_monorepo_copy(target: Path, support_level: int) -> tuple[Path, Path]:
    """Copies the repository into `target` laid out as Airbyte's monorepo; returns the connector's and docs' paths."""
    import yaml

    connector_dir = target / CONNECTOR_DIRECTORY
    for relative in _repository_files():
        if relative == DOCS_PAGE:
            continue
        destination = connector_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, destination)

    metadata_path = connector_dir / "metadata.yaml"
    metadata = yaml.safe_load(metadata_path.read_text())
    docs_path = target / _documentation_path(metadata)
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / DOCS_PAGE, docs_path)

    # The support level Airbyte would give the connector, in the copy only.
    metadata["data"].setdefault("ab_internal", {})["sl"] = support_level
    metadata_path.write_text(yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True))
    return connector_dir, docs_path


# ---------------------------------------------------------------------------------------------------------------
# Offline: "never released" for every registry, and no connection at all.


class Offline:
    """Stubs the package's network look-ups and refuses every other connection, recording what was asked."""

    def __init__(self) -> None:
        self.unfetched_links: list[str] = []
        self.blocked_connections: list[str] = []

    def install(self) -> None:
        import socket

        # First, so that nothing imported below can reach the network either.
        def refuse(address, *args, **kwargs):
            self.blocked_connections.append(repr(address))
            raise OSError(f"tools/qa_checks.py runs offline: no connection to {address!r}")

        socket.socket.connect = lambda sock, address: refuse(address)
        socket.socket.connect_ex = lambda sock, address: refuse(address)
        socket.create_connection = lambda address, *args, **kwargs: refuse(address)
        socket.getaddrinfo = lambda host, *args, **kwargs: refuse(host)

        import requests
        from airbyte_ops_mcp import metadata_validator
        from airbyte_ops_mcp.connector_ops import utils as connector_utils
        from airbyte_ops_mcp.connector_qa.checks.documentation import documentation
        from airbyte_ops_mcp.connector_qa.checks.version import CheckVersionIncrement

        # The OSS and cloud registries (Connector.is_released, .cloud_usage, .sbom_url): no connector in them.
        connector_utils.download_catalog = lambda url: {"sources": [], "destinations": []}
        # Docker Hub: no tag released, no image there (only looked up for a baseImage, which this project has not).
        metadata_validator.get_latest_version_on_dockerhub = lambda *args, **kwargs: None
        metadata_validator.is_image_on_docker_hub = lambda *args, **kwargs: False
        # metadata.yaml on Airbyte's master branch (the version increment check): a new connector has none.
        CheckVersionIncrement._get_master_metadata = lambda self, connector: None

        # The links check GETs every link of the docs page and counts one it cannot reach as valid: refuse them
        # as unreachable, and list them.
        offline = self

        class _UnreachableRequests:
            exceptions = requests.exceptions

            @staticmethod
            def get(url, *args, **kwargs):
                offline.unfetched_links.append(url)
                raise requests.exceptions.ConnectionError(f"{url}: not fetched, tools/qa_checks.py runs offline")

        documentation.requests = _UnreachableRequests


# ---------------------------------------------------------------------------------------------------------------
# Running the checks.


def run_checks(monorepo_root: Path, verbose: bool) -> list[tuple[object, str, str, str]]:
    """Each enabled check on the connector, in the package's order: (check, status, message, captured output)."""
    from airbyte_ops_mcp.connector_ops.utils import Connector
    from airbyte_ops_mcp.connector_qa.checks import ENABLED_CHECKS

    os.chdir(monorepo_root)  # the package's Connector reads ./airbyte-integrations/... and ./docs/...
    connector = Connector(TECHNICAL_NAME)
    results = []
    for check in ENABLED_CHECKS:
        captured = io.StringIO()
        handler = logging.StreamHandler(captured)
        logging.getLogger().addHandler(handler)
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                result = check.run(connector)
            status, message = result.status.name, result.message
        except Exception as error:  # noqa: BLE001 - a check that breaks is reported, not fatal
            status, message = "ERROR", f"{type(error).__name__}: {error}"
        finally:
            logging.getLogger().removeHandler(handler)
        results.append((check, status, message, captured.getvalue() if verbose else ""))
    return results


def report(results, offline: Offline, support_level: int, docs_path: Path, connector_dir: Path, root: Path) -> int:
    marks = {"PASSED": "PASS", "FAILED": "FAIL", "SKIPPED": "SKIP", "ERROR": "ERROR"}
    print(f"Airbyte connector QA checks ({PACKAGE} {PACKAGE_VERSION}), offline, support level {support_level}")
    print(f"  connector: {connector_dir.relative_to(root)}/   docs page: {docs_path.relative_to(root)}")
    print()
    unexpected = []
    expected = []
    for check, status, message, captured in results:
        class_name = type(check).__name__
        tag = marks[status]
        if status == "FAILED" and class_name in LAYOUT_BOUND_FAILURES:
            tag = "FAIL (expected)"
            expected.append(class_name)
        elif status in ("FAILED", "ERROR"):
            unexpected.append(class_name)
        print(f"[{tag}] {check.category.value.split(' ', 1)[-1]}: {check.name}  ({class_name})")
        for line in str(message).strip().splitlines():
            print(f"        {line}")
        if status == "FAILED" and class_name in LAYOUT_BOUND_FAILURES:
            print(f"        -> layout-bound: {LAYOUT_BOUND_FAILURES[class_name]}")
        if captured.strip():
            print(textwrap.indent(captured.rstrip(), "        | "))
    counts = {status: sum(1 for _, s, _, _ in results if s == status) for status in marks}
    print()
    if offline.unfetched_links:
        links = sorted(set(offline.unfetched_links))
        print(f"Not fetched (offline), so not verified by the links check: {len(links)} link(s)")
        for link in links:
            print(f"  {link}")
    if offline.blocked_connections:
        print(f"Connections refused (a look-up this script does not stub): {', '.join(offline.blocked_connections)}")
    print(
        f"Summary: {counts['PASSED']} passed, {counts['FAILED']} failed "
        f"({len(expected)} of them layout-bound), {counts['SKIPPED']} skipped, {counts['ERROR']} errors, "
        f"of {len(results)} checks."
    )
    if unexpected:
        print(f"Unexpected failures: {', '.join(unexpected)}")
        return 1
    print("No failure beyond the layout-bound ones.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"the venv holding {PACKAGE}=={PACKAGE_VERSION} (made if missing; default .local/qa-venv)")
    parser.add_argument("--support-level", type=int, default=300, choices=(0, 100, 200, 300),
                        help="ab_internal.sl to give the copy (default 300: documentation content checks apply)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the copy in DIR (must not exist) and keep it, instead of a temporary directory")
    parser.add_argument("--verbose", action="store_true", help="show what each check prints and logs")
    args = parser.parse_args(argv)

    if not _package_is_importable():
        if os.environ.get(REEXEC_MARKER):
            print(f"qa_checks: {PACKAGE}=={PACKAGE_VERSION} is not importable in {sys.executable}", file=sys.stderr)
            return 2
        python = _ensure_venv(args.venv.resolve())
        os.environ[REEXEC_MARKER] = "1"
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])

    # The package imports PyAirbyte, whose anonymous usage reporting would try to send events.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not args.verbose:
        logging.disable(logging.WARNING)  # the package warns, e.g., that ab_internal.ql is not set (it assumes 100)
        warnings.filterwarnings("ignore", category=FutureWarning)  # Google's libraries, about Python versions
    offline = Offline()
    offline.install()

    if args.keep:
        args.keep.mkdir(parents=True)
        root = args.keep.resolve()
        cleanup = contextlib.nullcontext()
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="qa-monorepo-")
        root = Path(cleanup.name)
    with cleanup:
        connector_dir, docs_path = build_monorepo_copy(root, args.support_level)
        cwd = os.getcwd()
        try:
            results = run_checks(root, args.verbose)
        finally:
            os.chdir(cwd)
        status = report(results, offline, args.support_level, docs_path, connector_dir, root)
        if args.keep:
            print(f"The copy is kept in {root}")
        return status


if __name__ == "__main__":
    sys.exit(main())
