"""Pins what happens when retries run out: a transient_error, never a silently shorter sync (HttpMocker).

Backoff sleeps are skipped so the retries run out in milliseconds; the CDK still counts every attempt. A fault
that never clears ends the sync once nothing has succeeded for the retry window: no new window starts.
"""

import json
import time
import types

import requests

import backoff._sync
import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.sources.streams.http import rate_limiting

from airbyte_cdk.sources.declarative.models.declarative_component_schema import CustomErrorHandler
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory

from source_callvolume.source import SourceCallvolume, resolved_manifest
from source_callvolume import components
from source_callvolume.components import now_utc
from testkit import START, STREAM, config, page, record, window_request

# The 5xx back-off's attempts within the 15 minutes a request may take: 2, 4, ... 256, 256 s.
ATTEMPTS = 10


def _read(sync_mode: SyncMode = SyncMode.full_refresh):
    catalog = CatalogBuilder().with_stream(STREAM, sync_mode).build()
    return read(SourceCallvolume(catalog, config(), None), config(), catalog)


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def test_server_errors_past_the_retries_fail_the_sync_with_a_transient_error(http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=True, total=6))
    http_mocker.post(window_request(skip=3), [HttpResponse(body="{}", status_code=503)] * ATTEMPTS)

    output = _read()

    # The rows read before the failure are still delivered.
    assert [m.record.data['_id'] for m in output.records] == [record(index)["_id"] for index in (1, 2, 3)]
    # The stream's own trace; the CDK closes the run with a combined one that run.py re-types (tested end to end).
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error


def test_a_body_that_stays_cut_short_fails_the_sync_instead_of_ending_the_window(http_mocker: HttpMocker) -> None:
    whole = json.dumps({"hasMore": False, "CallVolumeUpdate": [record(1)], "totalCount": 1})
    http_mocker.post(window_request(skip=0), [HttpResponse(body=whole[: len(whole) // 2], status_code=200)] * ATTEMPTS)

    output = _read(SyncMode.incremental)

    assert output.records == []
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error
    # The window was not read: the state must not claim it was.
    assert all(message.state.stream.stream_state.intervalEndTimeStamp <= "2024-03-01T00:00:00Z" for message in output.state_messages)


class _Clock:
    """The guard's clock, advanced by every backoff sleep instead of real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_fault_that_never_clears_ends_the_sync_and_starts_no_new_window(http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: every request failing for good after a few good pages kept the sync retrying window after window.
    # The clock is patched where the back-offs sleep and the guard reads it, not in the time module: the threads
    # other tests left running (the deadline watcher, the budget's leak task) would spin on a sleep that returns
    # at once and move the clock by hours.
    clock = _Clock()
    backoff_time = types.SimpleNamespace(sleep=clock.sleep)
    monkeypatch.setattr(backoff._sync, "time", backoff_time)
    monkeypatch.setattr(rate_limiting, "time", backoff_time)
    monkeypatch.setattr(components, "time", types.SimpleNamespace(monotonic=clock.monotonic, sleep=time.sleep, time=time.time))
    edges = [f"2024-03-01T{hour:02d}:00:00Z" for hour in range(0, 24, 3)] + ["2024-03-02T00:00:00Z"]
    windows = [window_request(start=start, end=end) for start, end in zip(edges, edges[1:])]
    for window in windows:
        http_mocker.post(window, HttpResponse(body="{}", status_code=503))
    catalog = CatalogBuilder().with_stream(STREAM, SyncMode.incremental).build()

    output = read(SourceCallvolume(catalog, config(window_hours=3), None), config(window_hours=3), catalog)

    assert any("no request successfully for 1" in m.trace.error.message for m in output.errors)
    # Every stream error is transient (the CDK's closing, combined trace is re-typed by run.py, tested end to end).
    stream_errors = [m for m in output.errors if not m.trace.error.message.startswith("During the sync")]
    assert stream_errors and all(m.trace.error.failure_type == FailureType.transient_error for m in stream_errors)
    # The windows in flight spent their 15 minutes of retries; the guard then refused every later window at once.
    sent = [_calls(http_mocker, window) for window in windows]
    assert sum(sent) <= 2 * ATTEMPTS and sent.count(0) >= len(windows) - 2
    assert not output.state_messages or all(m.state.stream.stream_state.intervalEndTimeStamp <= START for m in output.state_messages)


def _calls(http_mocker: HttpMocker, request) -> int:
    for count in range(0, 100):
        try:
            http_mocker.assert_number_of_calls(request, count)
            return count
        except AssertionError:
            continue
    raise AssertionError("more than 100 calls")


def test_a_retry_after_given_as_an_http_date_is_waited_as_told(http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch) -> None:
    # An HTTP date is Retry-After's other form: read as a number, it would crash the CDK's request budget.
    waits: list = []
    monkeypatch.setattr("time.sleep", waits.append)
    when = now_utc().add(seconds=7).format("ddd, DD MMM YYYY HH:mm:ss [GMT]")
    http_mocker.post(
        window_request(skip=0),
        [HttpResponse(body="{}", status_code=429, headers={"Retry-After": when}), page([record(1)], has_more=False)],
    )

    output = _read()

    assert [m.record.data["_id"] for m in output.records] == [record(1)["_id"]]
    assert 6 <= max(waits) <= 8


def test_a_refused_connection_names_host_until_kore_has_answered_then_it_is_retried() -> None:
    # A wrong `host` fails at once; a refused connection in the middle of a sync is a blip, retried.
    error_handler = ModelToComponentFactory().create_component(CustomErrorHandler, resolved_manifest()["definitions"]["error_handler"], config())
    refused = requests.exceptions.ConnectionError("HTTPSConnectionPool: Max retries exceeded (Caused by NewConnectionError('refused'))")
    good = requests.Response()
    good.status_code, good._content = 200, json.dumps({"hasMore": False, "CallVolumeUpdate": [], "totalCount": 0}).encode()
    good.request = requests.Request("POST", "https://platform.kore.ai/agentassist/api/public/analytics/account/a/callvolume").prepare()

    before = error_handler.interpret_response(refused)
    error_handler.interpret_response(good)
    after = error_handler.interpret_response(refused)

    assert before.failure_type == FailureType.config_error and "`host`" in before.error_message
    assert after.failure_type == FailureType.transient_error and after.response_action.name == "RETRY"
