"""Runs the installed `source-callvolume` command as a user's Airbyte instance would, against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import pytest

from simulator import Simulator
from testkit import configured_catalog as catalog

CONNECTOR = str(Path(sys.executable).with_name("source-callvolume"))
RUN_TIMEOUT_SECONDS = 300
UNPACED = 100000


@dataclass
class Run:
    """What one run of the connector printed, sorted by message type."""

    returncode: int
    stdout: str
    stderr: str
    messages: List[dict] = field(default_factory=list)

    def of_type(self, message_type: str) -> List[dict]:
        return [message for message in self.messages if message["type"] == message_type]

    @property
    def records(self) -> List[dict]:
        return [message["record"]["data"] for message in self.of_type("RECORD")]

    @property
    def states(self) -> List[dict]:
        return [message["state"] for message in self.of_type("STATE")]

    @property
    def last_state(self) -> Optional[dict]:
        return self.states[-1] if self.states else None

    @property
    def cursor(self) -> Optional[str]:
        state = self.last_state
        return state["stream"]["stream_state"].get("intervalEndTimeStamp") if state else None

    @property
    def errors(self) -> List[dict]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    @property
    def connection_status(self) -> dict:
        (status,) = self.of_type("CONNECTION_STATUS")
        return status["connectionStatus"]


class Connector:
    """Writes the config, catalog and state files of a run, runs the command, and parses what it printed."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._runs = 0

    def _write(self, name: str, content: Any) -> str:
        path = self._workdir / f"{self._runs}-{name}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    def run(self, command: str, config: Any = None, *, catalog: Any = None, state: Any = None, extra: Sequence[str] = ()) -> Run:
        """Runs the command; a config that sets no `requests_per_minute` gets one no test reaches, since only the
        budget's own tests (test_budget.py) are about pacing, and at the default of 50 the suite would take hours."""
        self._runs += 1
        if isinstance(config, dict) and "requests_per_minute" not in config:
            config = {**config, "requests_per_minute": UNPACED}
        arguments = [CONNECTOR, command]
        if config is not None:
            arguments += ["--config", self._write("config", config)]
        if catalog is not None:
            arguments += ["--catalog", self._write("catalog", catalog)]
        if state is not None:
            arguments += ["--state", self._write("state", state)]
        completed = subprocess.run(
            [*arguments, *extra], capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
        )
        messages = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
        return Run(completed.returncode, completed.stdout, completed.stderr, messages)

    def read(self, config: Mapping[str, Any], *, sync_mode: str = "incremental", state: Optional[Any] = None, extra: Sequence[str] = ()) -> Run:
        return self.run("read", config, catalog=catalog(sync_mode), state=state, extra=extra)


@pytest.fixture
def connector(tmp_path: Path) -> Connector:
    return Connector(tmp_path)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(queues=4, days=3) as sim:
        yield sim


def ids(records: Sequence[Mapping[str, Any]]) -> set:
    return {record["_id"] for record in records}


def by_id(records: Sequence[Mapping[str, Any]]) -> dict:
    return {record["_id"]: record for record in records}
