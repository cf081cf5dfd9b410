"""Pins what happens when retries run out: a transient_error, never a silently shorter sync (HttpMocker).

Backoff sleeps are skipped so the retries run out in milliseconds; the CDK still counts every attempt.
"""

import json

import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read

from source_callvolume.source import SourceCallvolume
from testkit import STREAM, config, page, record, window_request

RETRIES = 8


def _read(sync_mode: SyncMode = SyncMode.full_refresh):
    catalog = CatalogBuilder().with_stream(STREAM, sync_mode).build()
    return read(SourceCallvolume(catalog, config(), None), config(), catalog)


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def test_server_errors_past_the_retries_fail_the_sync_with_a_transient_error(http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=True, total=6))
    http_mocker.post(window_request(skip=3), [HttpResponse(body="{}", status_code=503)] * (RETRIES + 1))

    output = _read()

    # The rows read before the failure are still delivered.
    assert [m.record.data['_id'] for m in output.records] == [record(index)["_id"] for index in (1, 2, 3)]
    # The stream's own trace; the CDK closes the run with a combined one that run.py re-types (tested end to end).
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error


def test_a_body_that_stays_cut_short_fails_the_sync_instead_of_ending_the_window(http_mocker: HttpMocker) -> None:
    whole = json.dumps({"hasMore": False, "CallVolumeUpdate": [record(1)], "totalCount": 1})
    http_mocker.post(window_request(skip=0), [HttpResponse(body=whole[: len(whole) // 2], status_code=200)] * (RETRIES + 1))

    output = _read(SyncMode.incremental)

    assert output.records == []
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error
    # The window was not read: the state must not claim it was.
    assert all(message.state.stream.stream_state.intervalEndTimeStamp <= "2024-03-01T00:00:00Z" for message in output.state_messages)
