"""Runs every test: the pytest suites, then the connector image's smoke test (tools/docker_smoke.py).

Unit tests, integration tests against the bundled simulator, and the CDK's standard tests run first; the image
is then built with docker or podman and `spec`, `check` and `read` run in it. The smoke test prints one
`SKIPPED:` line and passes where it cannot run (no working engine, no base image), and is left out when
SKIP_DOCKER_SMOKE is set (for quick local runs); it installs nothing (docs/container-image.md). The run ends
with one line, `N passed, N failed, N skipped`, counting pytest's outcomes and the smoke test as one more.
Exits non-zero when either part fails.

Called by `python3 dev.py test` and by `.ci/run`; extra arguments go to pytest. When they name test files or
folders (`unit_tests/test_packaging.py`, `integration_tests/test_read.py::test_x`), pytest runs those alone
instead of every suite; the smoke test runs all the same, unless SKIP_DOCKER_SMOKE is set.
"""

import subprocess
import sys
from pathlib import Path

import pytest

TEST_PATHS = ["unit_tests", "integration_tests"]
DOCKER_SMOKE = Path(__file__).with_name("docker_smoke.py")


class _Outcomes:
    """Counts pytest's outcomes, for the one summary line that closes the whole run."""

    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        stats = terminalreporter.stats
        self.passed = len(stats.get("passed", []))
        self.failed = len(stats.get("failed", [])) + len(stats.get("error", []))
        self.skipped = len(stats.get("skipped", []))


def main(argv: list[str]) -> int:
    outcomes = _Outcomes()
    names_tests = any(Path(argument.split("::")[0]).exists() for argument in argv if not argument.startswith("-"))
    paths = [] if names_tests else TEST_PATHS
    pytest_status = int(pytest.main([*paths, "-q", "-p", "no:cacheprovider", *argv], plugins=[outcomes]))
    sys.stdout.flush()
    # Run even after a pytest failure: one run then reports on both the code and the image.
    skipped = False
    with subprocess.Popen([sys.executable, str(DOCKER_SMOKE)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as smoke:
        for line in smoke.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            skipped = skipped or line.startswith("SKIPPED:")
    if smoke.returncode:
        outcomes.failed += 1
    elif skipped:
        outcomes.skipped += 1
    else:
        outcomes.passed += 1
    print(f"{outcomes.passed} passed, {outcomes.failed} failed, {outcomes.skipped} skipped")
    return pytest_status or smoke.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
