"""Pins "trust no answer" through the installed command, against a simulator that misbehaves (issue 13).

Each case ends one of two ways only: every row read and a correct state; or a TRACE error naming the cause, no
state covering a row not emitted, and a non-zero exit. Never exit 0 with rows missing. No window costs more
requests than the pages its totalCount needs plus two, and no token reaches another host or any output line.
"""

import math
import re
from collections import Counter
from typing import Any

import pytest

from integration_tests.conftest import Connector, Run, by_id
from simulator import Simulator
from testkit import stream_state, utc

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
PAGE_CAP = 20


def _messages(run: Run) -> str:
    return " ".join(error["message"] for error in run.errors)


def _failed_loudly(run: Run) -> bool:
    return run.returncode != 0 and bool(run.errors)


def _requests_per_window(sim: Simulator) -> Counter:
    return Counter(request["body"]["fromTimeStamp"] for request in sim.requests if request["body"])


@pytest.mark.parametrize("mode", ["ignore_skip", "endless_has_more"])
def test_a_server_that_never_stops_paging_fails_each_window_within_its_pages_plus_two(connector: Connector, mode: str) -> None:
    # Regression: an ignored skip, or hasMore forever, paged ~2,000 requests in 90 s with no error.
    with Simulator(queues=2, days=2, page_cap=PAGE_CAP, **{mode: True}) as sim:
        run = connector.read(sim.config(), sync_mode="full_refresh")
        windows = {(request["body"]["fromTimeStamp"], request["body"]["toTimeStamp"]) for request in sim.requests}
        pages_needed = {start: math.ceil(len(sim.records(start, end)) / PAGE_CAP) for start, end in windows}
        per_window = _requests_per_window(sim)

    assert _failed_loudly(run) and "not paging" in _messages(run)
    assert per_window and all(sent <= pages_needed[start] + 2 for start, sent in per_window.items())


def test_pages_without_has_more_are_read_on_by_total_count(connector: Connector) -> None:
    # Regression: without hasMore the window ended after its first page, exit 0, rows never read.
    with Simulator(queues=3, days=2, page_cap=PAGE_CAP, omit_has_more=True) as sim:
        run = connector.read(sim.config())
        expected = sim.records()

    assert run.returncode == 0 and not run.errors
    assert by_id(run.records) == by_id(expected)
    assert run.cursor == max(record["intervalEndTimeStamp"] for record in expected).replace(".000Z", "Z")


def test_a_row_from_decades_ahead_fails_the_sync_and_never_moves_the_state(connector: Connector) -> None:
    # Regression: the state jumped to 2070 and every later sync read nothing, exit 0.
    # window_hours set: the simulator puts the row in the first page it serves, which must be a window's.
    with Simulator(queues=2, days=2, future_row=True) as sim:
        run = connector.read(sim.config(num_workers=1, window_hours=24))
        future_id = sim.future_row_id

    assert _failed_loudly(run) and future_id in _messages(run)
    assert future_id not in by_id(run.records)
    assert all(state["stream"]["stream_state"]["intervalEndTimeStamp"] < "2030" for state in run.states)


def test_an_off_grid_state_loses_no_interval_under_the_inside_filter(connector: Connector) -> None:
    # Regression: from a cursor at :07 every window edge was off the grid and "inside" lost the straddling intervals.
    with Simulator(queues=3, days=3, semantics="inside") as sim:
        rows = sim.records()
        on_grid = utc(rows[len(rows) // 3]["intervalEndTimeStamp"])
        off_grid = on_grid.add(minutes=7).format("YYYY-MM-DD[T]HH:mm:ss[Z]")
        run = connector.read(sim.config(lookback_minutes=60, window_hours=5), state=stream_state(off_grid))
        first_read = on_grid.subtract(minutes=60).format("YYYY-MM-DD[T]HH:mm:ss.SSS[Z]")
        expected = [row for row in rows if row["intervalStartTimeStamp"] >= first_read]

    assert run.returncode == 0 and not run.errors
    assert set(by_id(expected)) <= set(by_id(run.records))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_naming_its_target_and_the_token_never_leaves_the_host(connector: Connector, status: int) -> None:
    # Regression: a 307/308 sent the POST with the signed token to the other host; a 301/302 sent it as a GET.
    with Simulator(queues=1, days=1) as elsewhere:
        target = f"{elsewhere.url}/stolen"
        with Simulator(queues=1, days=1, redirect=(status, target)) as sim:
            run = connector.read(sim.config())
        reached_elsewhere = elsewhere.requests

    assert _failed_loudly(run) and run.errors[0]["failure_type"] == "config_error"
    assert target in _messages(run) and "`host`" in _messages(run)
    assert reached_elsewhere == []


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_token_echoed_back_in_an_error_is_masked_on_every_line(connector: Connector, debug: bool) -> None:
    # Regression: the TRACE was masked, the ERROR log line with the traceback printed the signed JWT in clear.
    with Simulator(queues=1, days=1, echo_auth_400=True) as sim:
        run = connector.read(sim.config(), extra=["--debug"] if debug else [])
        tokens = [request["auth"] for request in sim.requests if request["auth"]]

    output = run.stdout + run.stderr
    assert _failed_loudly(run) and tokens
    assert not any(token in output for token in tokens)
    assert not any(token.split(".")[2] in output for token in tokens)
    assert not JWT_SHAPE.search(output)


def test_a_first_day_search_that_contradicts_itself_asks_for_a_start_date(connector: Connector) -> None:
    # Regression: an empty page saying hasMore=true made the account look empty; state = now, history never read.
    with Simulator(queues=2, days=2, contradictory_probe=True) as sim:
        config = {key: value for key, value in sim.config().items() if key != "start_date"}
        run = connector.read(config)

    assert _failed_loudly(run) and run.errors[0]["failure_type"] == "config_error"
    assert "`start_date`" in _messages(run)
    assert not run.records and not run.states


def test_a_first_day_search_asks_a_contradictory_answer_again(connector: Connector) -> None:
    with Simulator(queues=2, days=2, contradictory_probe="once") as sim:
        config = {key: value for key, value in sim.config().items() if key != "start_date"}
        run = connector.read(config)
        expected = sim.records()

    assert run.returncode == 0 and not run.errors
    assert by_id(run.records) == by_id(expected)


@pytest.mark.parametrize(
    # A str is written to the file as it is: the second case is a JSON string.
    "state", [{"call_volume": {"intervalEndTimeStamp": "2024-03-01T00:00:00Z"}}, '"2024-03-01"', [1, 2, 3]], ids=["legacy-dict", "string", "numbers"]
)
def test_a_state_file_of_the_wrong_shape_is_refused_naming_state(connector: Connector, state: Any) -> None:
    # Regression: exit 1 with a Python traceback on stderr and nothing on stdout ("no error message" in Airbyte).
    with Simulator(queues=1, days=1) as sim:
        run = connector.read(sim.config(), state=state)
        requests = sim.requests

    assert _failed_loudly(run) and run.errors[0]["failure_type"] == "config_error"
    assert "--state" in _messages(run) and "STREAM state messages" in _messages(run)
    assert "Traceback" not in run.stderr and requests == []


@pytest.mark.slow
def test_an_answer_that_drips_past_the_deadline_is_cut_and_retried(connector: Connector) -> None:
    # Regression: each byte reset the 30 s read timeout; one request could last hours, with no error and no row.
    with Simulator(queues=1, days=1, drip_seconds=0.5, drip_first_n=1) as sim:
        run = connector.read(sim.config(num_workers=1), sync_mode="full_refresh")
        expected = sim.records()
        log = sim.requests

    assert run.returncode == 0 and not run.errors
    assert by_id(run.records) == by_id(expected)
    assert log[0]["dripped"] and len(log) >= 2
    assert 110 <= log[1]["received_at"] - log[0]["received_at"] <= 200

