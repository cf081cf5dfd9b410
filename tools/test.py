"""Runs every test: the pytest suites, then the connector image's smoke test (tools/docker_smoke.py).

Unit tests, integration tests against the bundled simulator, and the CDK's standard tests run first; the image
is then built with podman and `spec`, `check` and `read` run in it. The smoke test prints one `SKIPPED:` line
and passes where containers cannot run, and is left out when SKIP_DOCKER_SMOKE is set (for quick local
runs). Exits non-zero when either part fails.

Called by `python3 dev.py test` and by `.ci/run`; extra arguments go to pytest.
"""

import subprocess
import sys
from pathlib import Path

import pytest

TEST_PATHS = ["unit_tests", "integration_tests"]
DOCKER_SMOKE = Path(__file__).with_name("docker_smoke.py")


def main(argv: list[str]) -> int:
    pytest_status = int(pytest.main([*TEST_PATHS, "-q", "-p", "no:cacheprovider", *argv]))
    sys.stdout.flush()
    # Run even after a pytest failure: one run then reports on both the code and the image.
    smoke_status = subprocess.run([sys.executable, str(DOCKER_SMOKE)]).returncode
    return pytest_status or smoke_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
