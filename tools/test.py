"""Runs every test: unit tests, integration tests against the bundled simulator, and the CDK's standard tests.

Called by `python3 dev.py test` and by `.ci/run`; extra arguments go to pytest.
"""

import sys

import pytest

TEST_PATHS = ["unit_tests", "integration_tests"]


def main(argv: list[str]) -> int:
    return int(pytest.main([*TEST_PATHS, "-q", "-p", "no:cacheprovider", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
