"""Pins the four WFM streams through the installed command against one consistent simulated account (issue 11):
each stream's full refresh returns exactly the simulator's rows, agent_activity's incremental syncs pick up events
that arrive late, and neither a capped activity answer nor a capped agents page loses a row or repeats one.
"""

from collections import Counter
from typing import Any, Dict, List

import pytest

from integration_tests.conftest import Connector, Run
from simulator import Simulator
from testkit import STREAMS, configured_catalog

ALL = list(STREAMS)


def _keys(stream: str, rows: List[Dict[str, Any]]) -> Counter:
    primary_key = [part[0] for part in STREAMS[stream][0]]
    return Counter(tuple(row.get(field) for field in primary_key) for row in rows)


def _records(run: Run, stream: str) -> List[Dict[str, Any]]:
    return [message["record"]["data"] for message in run.of_type("RECORD") if message["record"]["stream"] == stream]


def _read(connector: Connector, sim: Simulator, streams: List[str] = ALL, sync_mode: str = "full_refresh", state: Any = None, **config: Any) -> Run:
    return connector.run("read", sim.config(**config), catalog=configured_catalog(sync_mode, streams), state=state)


def _cursor(run: Run, stream: str) -> Any:
    states = [message["state"] for message in run.of_type("STATE") if message["state"]["stream"]["stream_descriptor"]["name"] == stream]
    return states[-1]["stream"]["stream_state"] if states else None


def test_a_full_refresh_of_the_four_streams_returns_exactly_the_simulators_rows(connector: Connector) -> None:
    with Simulator(queues=3, days=2, page_cap=40, agents_page_cap=4, queue_description_key="mixed") as sim:
        run = _read(connector, sim)
        expected = {"call_volume": sim.records(), "queues": sim.queues(), "agents": sim.agents(), "agent_activity": sim.activity()}

    assert run.returncode == 0 and not run.errors, run.stderr[-2000:]
    for stream in ALL:
        received = _records(run, stream)
        assert _keys(stream, received) == _keys(stream, expected[stream]), stream
        assert max(_keys(stream, received).values()) == 1, f"{stream} repeats a row"
    # Queue ids are the call-volume rows' queueIds, and every description arrives as `description`.
    assert {row["collectionPointId"] for row in _records(run, "queues")} == {row["queueId"] for row in expected["call_volume"]}
    assert all("description" in row and "Description" not in row for row in _records(run, "queues"))
    assert {row["AgentId"] for row in _records(run, "agent_activity")} <= {row["agentId"] for row in _records(run, "agents")}
    assert all(row["EventTimeUtc"].endswith("Z") for row in _records(run, "agent_activity"))


def test_a_capped_activity_answer_loses_no_event_and_repeats_none(connector: Connector) -> None:
    # Kore.ai documents no paging: each answer here is cut at 10 events, the earliest kept.
    with Simulator(queues=2, days=2, activity_answer_cap=10) as sim:
        run = _read(connector, sim, ["agent_activity"])
        expected = sim.activity()

    received = _records(run, "agent_activity")
    assert run.returncode == 0 and not run.errors, run.stderr[-2000:]
    assert len(expected) > 50
    assert _keys("agent_activity", received) == _keys("agent_activity", expected)


def test_incremental_agent_activity_picks_up_late_events_in_the_next_sync(connector: Connector) -> None:
    with Simulator(queues=2, days=2) as sim:
        late = sim.hold_back_activity(last=5)
        first = _read(connector, sim, ["agent_activity"], "incremental")
        sim.release_activity()
        second = _read(connector, sim, ["agent_activity"], "incremental", state=[m["state"] for m in first.of_type("STATE")][-1:])
        expected = sim.activity()

    assert first.returncode == 0 and second.returncode == 0
    assert not set(_keys("agent_activity", _records(first, "agent_activity"))) & set(late)
    both = _keys("agent_activity", _records(first, "agent_activity")) + _keys("agent_activity", _records(second, "agent_activity"))
    assert set(both) == set(_keys("agent_activity", expected))
    assert set(late) <= set(_keys("agent_activity", _records(second, "agent_activity")))
    # The state never runs ahead of the events received.
    newest = max(row["EventTimeUtc"] for row in _records(first, "agent_activity"))
    assert _cursor(first, "agent_activity")["EventTimeUtc"] == newest


def test_agents_from_a_server_that_ignores_offset_fail_loudly(connector: Connector) -> None:
    with Simulator(queues=3, days=1, ignore_offset=True, agents_page_cap=2) as sim:
        run = _read(connector, sim, ["agents"])
        agents_requests = [request for request in sim.requests if request["path"].endswith("/agents")]

    assert run.returncode != 0 and "ignores `offset`" in " ".join(error["message"] for error in run.errors)
    assert len(agents_requests) == 2


@pytest.mark.slow
def test_the_four_streams_together_stay_within_the_accounts_budget(connector: Connector) -> None:
    # One account, one budget across the four endpoints: Kore.ai refuses past 30 a minute here, the connector
    # is told 25; the read needs more than a minute's worth.
    with Simulator(queues=4, days=6, page_cap=30, rate_limit_per_minute=30) as sim:
        run = _read(connector, sim, requests_per_minute=25)
        log = sim.requests

    assert run.returncode == 0 and not run.errors, run.stderr[-2000:]
    assert len(log) > 30
    assert sum(request["rate_limited"] for request in log) <= len(log) // 100 + 1
