"""Pins that the manifest runs anywhere the CDK runs: the CDK's generic `source-declarative-manifest` runner
loads the same manifest and components.py, with this package out of reach, and reads exactly what the package
reads; without `start_date` it refuses the config, sending no request, rather than crawl from 1970.

The runner gets the components with `--components-path`, or injected through the config
(`__injected_components_py`), as the Connector Builder and manifest-only deployments pass them.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import pytest
import yaml

from integration_tests.conftest import UNPACED, Connector, Run, by_id
from simulator import Simulator
from testkit import configured_catalog, stream_state

PACKAGE = Path(__file__).resolve().parent.parent / "source_callvolume"
MANIFEST, COMPONENTS = PACKAGE / "manifest.yaml", PACKAGE / "components.py"
# The runner as a user of the bare CDK has it: `import source_callvolume` fails in its process.
WITHOUT_THE_PACKAGE = (
    "import sys; sys.modules['source_callvolume'] = None\n"
    "from airbyte_cdk.cli.source_declarative_manifest import run\n"
    "run()\n"
)


def _generic_read(workdir: Path, config: dict, *, injected: bool, sync_mode: str = "incremental", state: Optional[List[dict]] = None) -> Run:
    arguments: List[str] = []
    if injected:
        components = COMPONENTS.read_text()
        config = {
            **config,
            "__injected_declarative_manifest": yaml.safe_load(MANIFEST.read_text()),
            "__injected_components_py": components,
            "__injected_components_py_checksums": {"md5": hashlib.md5(components.encode()).hexdigest()},
        }
    else:
        arguments = ["--manifest-path", str(MANIFEST), "--components-path", str(COMPONENTS)]
    files = {"config": {**config, "requests_per_minute": UNPACED}, "catalog": configured_catalog(sync_mode)}
    if state is not None:
        files["state"] = state
    for name, content in files.items():
        (workdir / f"{name}.json").write_text(json.dumps(content))
        arguments += [f"--{name}", str(workdir / f"{name}.json")]
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_PACKAGE, "read", *arguments],
        capture_output=True, text=True, timeout=300, cwd=workdir, stdin=subprocess.DEVNULL,
        env={**os.environ, "AIRBYTE_ENABLE_UNSAFE_CODE": "true", "PYTHONPATH": ""},
    )
    messages = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return Run(completed.returncode, completed.stdout, completed.stderr, messages)


@pytest.mark.parametrize("injected", [False, True], ids=["components-path", "injected-in-config"])
def test_the_generic_runner_reads_what_the_package_reads_full_refresh_and_incremental(connector: Connector, tmp_path: Path, injected: bool) -> None:
    with Simulator(queues=3, days=2, page_cap=40) as sim:
        config = sim.config()
        package_full = connector.read(config, sync_mode="full_refresh")
        generic_full = _generic_read(tmp_path, config, injected=injected, sync_mode="full_refresh")
        state = stream_state(package_full.cursor)
        package_incremental = connector.read(config, state=state)
        generic_incremental = _generic_read(tmp_path, config, injected=injected, state=state)

    assert generic_full.returncode == 0 and not generic_full.errors, generic_full.stderr[-2000:]
    assert by_id(generic_full.records) == by_id(package_full.records) and len(package_full.records) > 200
    assert generic_incremental.returncode == 0 and not generic_incremental.errors
    assert by_id(generic_incremental.records) == by_id(package_incremental.records) and package_incremental.records
    assert generic_incremental.last_state == package_incremental.last_state


def test_the_generic_runner_refuses_a_config_without_start_date_and_sends_no_request(tmp_path: Path) -> None:
    # Regression: without the package's first-day search the runner crawled from 1970, one empty day a request.
    with Simulator(queues=1, days=1) as sim:
        config: Any = {key: value for key, value in sim.config().items() if key != "start_date"}
        run = _generic_read(tmp_path, config, injected=False)
        requests = len(sim.requests)

    assert run.returncode != 0 and not run.records and not run.states
    assert "`start_date` is required" in " ".join(error["message"] for error in run.errors)
    assert requests == 0
