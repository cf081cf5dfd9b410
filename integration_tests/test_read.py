"""Pins what `read` delivers against the simulator: the exact set of intervals, whatever the API does at edges.

- full refresh under each of the four time-filter semantics the API might use, and under a page cap;
- every state's record count is the number of records written since the previous state;
- incremental across syncs: late-published and revised intervals are read by the next sync, the state never
  runs ahead of the data received, a sync with nothing new re-reads only the lookback, a future state reads
  nothing;
- a first sync without a start date starts at the first interval there is, without crawling empty windows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from integration_tests.conftest import Connector, by_id, ids
from simulator import Simulator

SEMANTICS = ["inside", "start", "end", "overlap"]
QUARTER = timedelta(minutes=15)
LOOKBACK = timedelta(minutes=180)


def _quarter_floor(moment: datetime) -> datetime:
    return moment - timedelta(minutes=moment.minute % 15, seconds=moment.second, microseconds=moment.microsecond)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _end(record: dict) -> datetime:
    return datetime.strptime(record["intervalEndTimeStamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _state(cursor: str) -> list:
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "call_volume"}, "stream_state": {"intervalEndTimeStamp": cursor}}}]


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_full_refresh_reads_every_interval_once_whichever_timestamp_the_api_filters_on(connector: Connector, semantics: str) -> None:
    # Six-hour windows put many interval edges on window edges.
    with Simulator(queues=3, days=2, semantics=semantics) as sim:
        run = connector.read(sim.config(window_hours=6), sync_mode="full_refresh")
        expected = sim.records()

    assert run.returncode == 0 and not run.errors
    assert len(run.records) == len(expected)
    assert by_id(run.records) == by_id(expected)


@pytest.mark.parametrize("semantics", ["inside", "overlap"])
def test_start_date_off_the_quarter_hour_still_reads_the_interval_around_it(connector: Connector, semantics: str) -> None:
    # Regression: a window starting at 00:07 under "inside" semantics lost the 00:00-00:15 interval.
    with Simulator(queues=2, days=1, semantics=semantics) as sim:
        start = sim.data_start + timedelta(minutes=7)
        run = connector.read(sim.config(start_date=_iso(start)), sync_mode="full_refresh")
        expected = [record for record in sim.records() if _end(record) > start]

    assert ids(run.records) == ids(expected)
    assert any(record["intervalStartTimeStamp"].endswith("T00:00:00.000Z") for record in run.records)


def test_full_refresh_follows_has_more_when_the_server_caps_pages_below_the_limit(connector: Connector) -> None:
    with Simulator(queues=6, days=2, page_cap=37) as sim:
        # One window of the whole range, as it is the paging that is tested here, not the window sizing.
        run = connector.read(sim.config(page_size=500, window_hours=72), sync_mode="full_refresh")
        expected = sim.records()
        skips = [request["body"]["skip"] for request in sim.requests if request["body"]["fromTimeStamp"] == _iso(sim.data_start)]

    assert by_id(run.records) == by_id(expected) and len(run.records) == len(expected)
    assert skips == list(range(0, skips[-1] + 1, 37))


def test_full_refresh_with_jti_enforced_signs_a_new_token_for_every_request(connector: Connector) -> None:
    with Simulator(queues=3, days=2, page_cap=50, enforce_jti=True) as sim:
        run = connector.read(sim.config(), sync_mode="full_refresh")
        expected = sim.records()
        statuses = {request["status"] for request in sim.requests}

    assert ids(run.records) == ids(expected)
    assert statuses == {200}


def test_each_state_counts_the_records_written_since_the_previous_state(connector: Connector) -> None:
    # The platform checks `sourceStats.recordCount` against the records it received; records reach stdout in
    # blocks of up to 100 (record_blocks.py), which must count as the records they hold.
    with Simulator(queues=5, days=4, page_cap=130) as sim:
        run = connector.read(sim.config(window_hours=8), sync_mode="full_refresh")
        expected = sim.records()

    reported, written, since_last_state = [], [], 0
    for message in run.messages:
        if message["type"] == "RECORD":
            since_last_state += 1
        elif message["type"] == "STATE":
            reported.append(message["state"]["sourceStats"]["recordCount"])
            written.append(since_last_state)
            since_last_state = 0

    assert len(run.records) == len(expected) and since_last_state == 0
    assert len(reported) > 3 and reported == written


def test_incremental_reads_late_published_and_revised_intervals_in_the_next_sync(connector: Connector) -> None:
    first_horizon = _quarter_floor(datetime.now(timezone.utc)) - timedelta(hours=6)
    with Simulator(queues=4, days=2, horizon=first_horizon) as sim:
        late = [record["_id"] for record in sim.records(first_horizon - timedelta(minutes=45), first_horizon)]
        sim.hold_back(late)
        first = connector.read(sim.config())
        assert ids(first.records) == ids(sim.records())
        # The newest intervals were held back: the state is the newest interval received, not the window end.
        assert first.cursor == _iso(max(_end(record) for record in first.records)) == _iso(first_horizon - timedelta(minutes=45))

        sim.release(late)
        revised = [record["_id"] for record in sim.records(first_horizon - timedelta(hours=2), first_horizon - timedelta(hours=1))]
        sim.revise(revised)
        sim.set_horizon(first_horizon + timedelta(hours=2))
        second = connector.read(sim.config(), state=[first.last_state])
        everything = by_id(sim.records())

    assert not second.errors
    assert set(late) <= ids(second.records)
    assert all(by_id(second.records)[record_id]["__v"] == everything[record_id]["__v"] == 1 for record_id in revised)
    merged = {**by_id(first.records), **by_id(second.records)}
    assert merged == everything
    assert second.cursor == _iso(first_horizon + timedelta(hours=2))


def test_sync_with_nothing_new_rereads_only_the_lookback(connector: Connector, simulator: Simulator) -> None:
    first = connector.read(simulator.config())
    simulator.reset_log()

    second = connector.read(simulator.config(), state=[first.last_state])

    state = datetime.strptime(first.cursor, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    expected = [record for record in simulator.records() if _end(record) > state - LOOKBACK]
    assert ids(second.records) == ids(expected)
    assert min(request["body"]["fromTimeStamp"] for request in simulator.requests) == _iso(state - LOOKBACK)
    assert second.cursor == first.cursor


def test_state_in_the_future_reads_nothing(connector: Connector, simulator: Simulator) -> None:
    run = connector.read(simulator.config(), state=_state("2099-01-01T00:00:00Z"))

    assert run.returncode == 0 and not run.errors
    assert run.records == []
    assert simulator.requests == []


def test_first_sync_without_start_date_starts_at_the_first_interval_without_crawling_empty_windows(connector: Connector) -> None:
    with Simulator(queues=3, days=4) as sim:
        config = sim.config()
        del config["start_date"]
        run = connector.read(config)
        expected = sim.records()
        probes = [request["body"] for request in sim.requests if "fromTimeStamp" not in request["body"]]
        windows = [request["body"] for request in sim.requests if "fromTimeStamp" in request["body"]]

    assert by_id(run.records) == by_id(expected)
    # The first answer's earliest row bounds the search: well within the 20 requests issue 10 allows.
    assert 0 < len(probes) <= 20
    assert len(windows) <= 4 + 2
    assert min(window["fromTimeStamp"] for window in windows) == _iso(sim.data_start)
