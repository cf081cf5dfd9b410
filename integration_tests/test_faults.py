"""Pins "nothing lost, nothing leaked" against the simulator's fault injection (issue 3).

- transient faults (429 with Retry-After, 5xx, a 200 cut short or not JSON, a reset connection, a hung one)
  are retried and the exact set of intervals still arrives;
- rows inserted into or removed from a window while it is paged shift offsets: none of the rows is lost;
- killed with SIGKILL at any point, a rerun from the last state emitted loses nothing;
- 401/403/404/400 in `read` fail with a config_error naming the field, and a non-zero exit;
- secrets and signed tokens never appear in any output, `--debug` included;
- bad input is refused, naming the field, before any request;
- a soak read of more than 100k rows through a mix of all the faults delivers the exact set and final state.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import pytest

from integration_tests.conftest import CONNECTOR, Connector, by_id, catalog, ids
from simulator import Faults, Simulator

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")


def _cursor_of(records: List[dict]) -> str:
    return max(record["intervalEndTimeStamp"] for record in records).replace(".000Z", "Z")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_and_no_row_is_lost(connector: Connector, status: int) -> None:
    with Simulator(queues=3, days=2, page_cap=40) as sim:
        sim.fail_next(status, count=3)
        run = connector.read(sim.config(), sync_mode="full_refresh")
        expected = sim.records()
        statuses = [request["status"] for request in sim.requests]

    assert run.returncode == 0 and not run.errors
    assert statuses.count(status) == 3
    assert by_id(run.records) == by_id(expected)


def test_rate_limit_waits_as_retry_after_asks(connector: Connector) -> None:
    # Regression (issue 15): with `Retry-After: 2`, the first default back-off, ignoring the header went
    # unnoticed. Five seconds is no back-off the connector would pick itself (2, 4, 8, ...).
    with Simulator(queues=2, days=1) as sim:
        sim.fail_next(429, count=1, retry_after=5)
        run = connector.read(sim.config(num_workers=1), sync_mode="full_refresh")
        expected = sim.records()
        log = sim.requests

    assert by_id(run.records) == by_id(expected)
    limited = next(index for index, request in enumerate(log) if request["status"] == 429)
    assert 5 <= log[limited + 1]["received_at"] - log[limited]["received_at"] < 7


@pytest.mark.parametrize(
    "faults",
    [Faults(rate_truncated=0.15), Faults(rate_not_json=0.15), Faults(rate_reset=0.15)],
    ids=["body-cut-short", "html-instead-of-json", "connection-reset"],
)
def test_broken_answers_are_retried_not_read_as_empty_pages(connector: Connector, faults: Faults) -> None:
    # Regression: the CDK's JSON decoder read a cut-short 200 as an empty page, ended the window and exited 0.
    with Simulator(queues=3, days=2, page_cap=50, faults=faults) as sim:
        run = connector.read(sim.config(), sync_mode="full_refresh")
        expected = sim.records()
        faulted = sum(1 for request in sim.requests if request["status"] in (0, 200)) - len(
            {(r["body"]["fromTimeStamp"], r["body"]["skip"]) for r in sim.requests}
        )

    assert run.returncode == 0 and not run.errors
    assert faulted > 0
    assert by_id(run.records) == by_id(expected)


def test_rate_limits_past_the_retries_end_the_run_with_a_transient_error_and_a_non_zero_exit(connector: Connector) -> None:
    # Regression: the CDK's closing trace of a failed read is typed config_error whatever the cause.
    with Simulator(queues=1, days=1, faults=Faults(rate_429=1.0, retry_after=1)) as sim:
        run = connector.read(sim.config(num_workers=1))

    assert run.returncode != 0
    assert run.errors and {error["failure_type"] for error in run.errors} == {"transient_error"}


def test_a_hung_connection_times_out_and_is_retried(connector: Connector) -> None:
    with Simulator(queues=2, days=1, faults=Faults(rate_hang=1.0, hang_seconds=120, first_n_only=1)) as sim:
        run = connector.read(sim.config(num_workers=1), sync_mode="full_refresh")
        expected = sim.records()

    assert run.returncode == 0 and not run.errors
    assert by_id(run.records) == by_id(expected)


@pytest.mark.parametrize("mutation", ["insert_during_paging", "remove_during_paging"])
def test_rows_moving_while_a_window_is_paged_lose_no_row(connector: Connector, mutation: str) -> None:
    with Simulator(queues=8, days=2, page_cap=30) as sim:
        before = sim.records()
        getattr(sim, mutation)(3, after_requests=2)
        run = connector.read(sim.config(num_workers=1), sync_mode="full_refresh")
        after = sim.records()
        (change,) = sim.mutations

    assert run.returncode == 0 and not run.errors
    removed = set(change["record_ids"]) if mutation == "remove_during_paging" else set()
    assert ids(before) - removed <= ids(run.records)
    assert ids(run.records) == ids(after) | removed
    # Only the window that moved is read twice.
    assert len(run.records) - len(ids(run.records)) <= 8 * 96


def _read_until_killed(config_path: Path, catalog_path: Path, state_path: Optional[Path], kill_after_states: int) -> tuple[list, Optional[dict]]:
    """Reads until `kill_after_states` states were emitted, then SIGKILLs; returns the records committed and the last state."""
    command = [CONNECTOR, "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if state_path:
        command += ["--state", str(state_path)]
    committed, pending, last_state, states = [], [], None, 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL) as process:
        for line in process.stdout:  # type: ignore[union-attr]
            message = json.loads(line)
            if message["type"] == "RECORD":
                pending.append(message["record"]["data"])
            elif message["type"] == "STATE":
                # A destination commits records only with the state that follows them.
                committed += pending
                pending = []
                last_state = message["state"]
                states += 1
                if states == kill_after_states:
                    os.kill(process.pid, signal.SIGKILL)
                    break
        process.wait()
    return committed, last_state


@pytest.mark.parametrize("kill_after_states", [1, 3, 6])
def test_rerun_from_the_last_state_after_sigkill_loses_nothing(tmp_path: Path, kill_after_states: int) -> None:
    with Simulator(queues=4, days=10, page_cap=100, latency=0.01) as sim:
        config_path, catalog_path, state_path = tmp_path / "config.json", tmp_path / "catalog.json", tmp_path / "state.json"
        config_path.write_text(json.dumps(sim.config(window_hours=24)))
        catalog_path.write_text(json.dumps(catalog()))
        committed, state = _read_until_killed(config_path, catalog_path, None, kill_after_states)
        assert state is not None
        state_path.write_text(json.dumps([state]))
        resumed = Connector(tmp_path).read(json.loads(config_path.read_text()), state=[state])
        expected = sim.records()

    assert resumed.returncode == 0 and not resumed.errors
    assert ids(committed) | ids(resumed.records) == ids(expected)


def test_state_is_emitted_after_every_window(connector: Connector) -> None:
    with Simulator(queues=2, days=5) as sim:
        run = connector.read(sim.config(window_hours=24))
        windows = len({request["body"]["fromTimeStamp"] for request in sim.requests})

    assert len(run.states) >= windows
    assert run.cursor == _cursor_of(run.records)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"credentials": {"auth_type": "client_credentials", "client_id": "cs-5e5f7c1a-0000-4000-8000-000000000001", "client_secret": "wrong-secret-but-long-enough-for-hs256"}}, "`credentials.client_secret`"),
        ({"account_id": "acc-not-mine"}, "`account_id`"),
        ({"org_id": "o-not-mine"}, "`org_id`"),
    ],
    ids=["401", "404", "400"],
)
def test_read_fails_with_a_config_error_naming_the_field(connector: Connector, change: dict, field: str) -> None:
    with Simulator(queues=1, days=1) as sim:
        run = connector.read(sim.config(**change))

    assert run.returncode != 0
    assert run.records == []
    assert run.errors and all(error["failure_type"] == "config_error" for error in run.errors)
    assert field in run.errors[0]["message"]


def test_read_fails_with_a_config_error_when_the_scope_is_missing(connector: Connector) -> None:
    with Simulator(queues=1, days=1, scope_granted=False) as sim:
        run = connector.read(sim.config())

    assert run.returncode != 0
    assert run.errors[0]["failure_type"] == "config_error" and "WFM Integration" in run.errors[0]["message"]


def _all_output(run) -> str:  # type: ignore[no-untyped-def]
    return run.stdout + run.stderr


@pytest.mark.parametrize("command", ["check", "read"])
def test_debug_output_holds_no_secret_and_no_signed_token(connector: Connector, command: str) -> None:
    with Simulator(queues=2, days=1, page_cap=20) as sim:
        config = sim.config()
        run = connector.run(command, config, catalog=catalog() if command == "read" else None, extra=["--debug"])
        tokens = {request["auth"] for request in sim.requests}

    output = _all_output(run)
    assert run.returncode == 0 and tokens
    assert '"level":"DEBUG"' in output or '"type": "DEBUG"' in output or "DEBUG" in output
    assert config["credentials"]["client_secret"] not in output
    assert not any(token in output for token in tokens)
    assert not JWT_SHAPE.search(output)


def test_debug_output_holds_no_pasted_jwt_even_when_it_is_refused(connector: Connector) -> None:
    with Simulator(queues=1, days=1) as sim:
        now = int(datetime.now(timezone.utc).timestamp())
        expired = sim.token(iat=now - 7200, exp=now - 3600)
        run = connector.read(sim.config(credentials={"auth_type": "jwt", "jwt": expired}), extra=["--debug"])

    assert run.returncode != 0
    assert expired not in _all_output(run)
    assert expired.split(".")[2] not in _all_output(run)


BAD_INPUT = [
    ({"start_date": "2024-02-30T00:00:00Z"}, "`start_date`"),
    ({"start_date": "yesterday"}, "`start_date`"),
    ({"end_date": "2024-13-01T00:00:00Z"}, "`end_date`"),
    ({"start_date": "2024-03-01T00:00:00Z", "end_date": "2024-02-01T00:00:00Z"}, "`end_date` must be after `start_date`"),
    ({"account_id": "acc/../other"}, "`account_id`"),
    ({"account_id": "acc?x=1"}, "`account_id`"),
    ({"account_id": ""}, "`account_id`"),
    ({"org_id": " "}, "`org_id`"),
    ({"host": "http://platform.kore.ai"}, "`host`"),
    ({"host": "https://platform.kore.ai/some/path"}, "`host`"),
    ({"page_size": 0}, "`page_size`"),
    ({"page_size": 20000}, "`page_size`"),
    ({"num_workers": 0}, "`num_workers`"),
    ({"num_workers": 100}, "`num_workers`"),
    ({"lookback_minutes": 20}, "`lookback_minutes`"),
    ({"credentials": {"auth_type": "jwt", "jwt": "not-a-token"}}, "`credentials.jwt`"),
    ({"credentials": {"auth_type": "client_credentials", "client_id": "", "client_secret": "x"}}, "`credentials.client_id`"),
]


@pytest.mark.parametrize("change, field", BAD_INPUT, ids=[str(change) for change, _ in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field_before_any_request(connector: Connector, change: dict, field: str) -> None:
    with Simulator(queues=1, days=1) as sim:
        config = sim.config(**change)
        check = connector.run("check", config)
        discover = connector.run("discover", config)
        read = connector.read(config)
        requests_made = sim.requests

    assert check.returncode == 0 and check.connection_status["status"] == "FAILED"
    assert field in check.connection_status["message"]
    # Regression (issue 15): discover could skip the field-by-field check and print a catalog.
    assert discover.returncode != 0 and not discover.of_type("CATALOG")
    assert discover.errors[0]["failure_type"] == "config_error" and field in discover.errors[0]["message"]
    assert read.returncode != 0 and read.records == []
    assert read.errors[0]["failure_type"] == "config_error" and field in read.errors[0]["message"]
    assert requests_made == []


def test_plain_http_to_a_remote_host_is_refused_and_no_request_leaves(connector: Connector) -> None:
    # Regression (issue 15): plain http:// for a remote host was caught only by the spec's generic message;
    # nothing checked that no request, and so no token, left in clear. 127.0.0.2 is not a host the spec
    # allows http:// for, yet it is this machine: a listener there sees any request that leaves.
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        listener.settimeout(0.5)
        with Simulator(queues=1, days=1) as sim:
            config = sim.config(host=f"http://127.0.0.2:{listener.getsockname()[1]}")
        check = connector.run("check", config)
        read = connector.read(config)
        try:
            listener.accept()
            reached = True
        except socket.timeout:
            reached = False

    assert check.connection_status["status"] == "FAILED" and "`host`" in check.connection_status["message"]
    assert read.returncode != 0 and "`host`" in read.errors[0]["message"]
    assert not reached


def test_a_config_file_that_is_not_json_is_refused_with_its_path(tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text("{not json")

    completed = subprocess.run([CONNECTOR, "check", "--config", str(config_path)], capture_output=True, text=True)

    (status,) = [json.loads(line) for line in completed.stdout.splitlines() if '"CONNECTION_STATUS"' in line]
    assert status["connectionStatus"]["status"] == "FAILED"
    assert str(config_path) in status["connectionStatus"]["message"] and "not valid JSON" in status["connectionStatus"]["message"]
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_state_that_is_not_a_time_is_refused_naming_the_value_and_the_fix(connector: Connector) -> None:
    garbage = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "call_volume"}, "stream_state": {"intervalEndTimeStamp": "garbage"}}}]
    with Simulator(queues=1, days=1) as sim:
        run = connector.read(sim.config(), state=garbage)
        requests_made = sim.requests

    assert run.returncode != 0 and requests_made == []
    assert run.errors[0]["failure_type"] == "config_error"
    assert "'garbage'" in run.errors[0]["message"] and "reset the stream" in run.errors[0]["message"]


def test_soak_over_100k_rows_through_every_fault_delivers_the_exact_set_and_final_state(connector: Connector) -> None:
    faults = Faults(rate_429=0.02, rate_5xx=0.03, rate_truncated=0.02, rate_not_json=0.02, rate_reset=0.02, retry_after=1)
    with Simulator(queues=24, days=50, page_cap=500, faults=faults) as sim:
        expected = sim.records()
        assert len(expected) >= 100_000
        sim.insert_during_paging(5, after_requests=7)
        run = connector.read(sim.config(page_size=1000))
        expected = sim.records()
        faulted = sum(1 for request in sim.requests if request["status"] != 200)

    assert run.returncode == 0 and not run.errors
    assert faulted > 10
    assert by_id(run.records) == by_id(expected)
    assert run.cursor == _cursor_of(expected)
