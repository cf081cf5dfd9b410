"""The CDK's standard source tests (airbyte_cdk.test.standard_tests), driven by acceptance-test-config.yml.

They run in-process against the bundled simulator, over all four streams: this module starts it and writes the
config and the configured catalog the acceptance-test-config.yml entries point at. The image tests are left to tools/docker_smoke.py, which builds
and runs the image with podman (there is no Docker engine on these machines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase

from simulator import Simulator
from source_callvolume.source import SourceCallvolume
from testkit import STREAMS, configured_catalog

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = ROOT / ".local" / "standard-tests"
CONFIG_FILES = [SCENARIO_FILES / name for name in ("config.json", "spec_config.json")]


@pytest.fixture(scope="module", autouse=True)
def simulator_config() -> Iterator[None]:
    with Simulator(queues=3, days=2) as sim:
        for path in CONFIG_FILES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(sim.config(requests_per_minute=100000)))
        (SCENARIO_FILES / "configured_catalog.json").write_text(json.dumps(configured_catalog(streams=STREAMS)))
        yield


class TestCallVolumeStandardSuite(SourceTestSuiteBase):
    connector = SourceCallvolume

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceCallvolume:
        config = scenario.get_config_dict(connector_root=ROOT, empty_if_missing=True) if scenario else {}
        return SourceCallvolume(config=config or None)
