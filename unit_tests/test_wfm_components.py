"""Pins what the WFM components decide that test_wfm_streams does not reach, built as the manifest wires them.

- agent activity, reading on: an event is known by its key (AgentId, EventTime, Activity, ReasonCode) and by
  nothing else; each window remembers its own boundary second, over every answer that ends in it; an answer with
  no readable time ends the window; an earlier second brought back, or an answer not oldest first, fails the sync
  with a message naming the record or the window;
- agents: a page already received is recognised by its `agentId`s whatever else changed, and fails naming its
  offset; the 10,000th page fails the stream;
- call volume: the words of a window that makes no progress (an empty page that says more, an ignored `skip`);
- time: now is UTC whatever the machine's zone; an HTTP-date `Retry-After` is waited in whole seconds, rounded up.
"""

import json
from typing import Any, Iterator, List, Mapping, Optional

import pendulum
import pytest
import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomPaginationStrategy,
    CustomRecordExtractor,
)
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker

from source_callvolume import components
from source_callvolume.components import UntrustworthyAnswerError, now_utc, seconds_until_http_date
from source_callvolume.source import SourceCallvolume, resolved_manifest
from testkit import ACCOUNT_URL, END, START, URL, activity, agent, array, config, endpoint_request, event, record, window_body

DEFINITIONS = resolved_manifest()["definitions"]
DAY_1, DAY_2 = "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"
#: The window a read of DAY_1 to DAY_2 asks agent activity for (the request adds a second to the window's end).
WINDOW = {"fromTimeStamp": DAY_1, "toTimeStamp": DAY_2}
#: A zone half an hour off UTC: a clock read in the machine's zone would show it.
MACHINE_ZONE = "Asia/Kolkata"


# --- Builders -----------------------------------------------------------------------------------------


def _component(model: Any, definition: Mapping[str, Any]) -> Any:
    """A component as the manifest declares it, built by the CDK's own factory."""
    return ModelToComponentFactory().create_component(model, definition, config())


def _extractor() -> components.WfmRecordExtractor:
    return _component(CustomRecordExtractor, DEFINITIONS["record_selector"]["extractor"])


def _answer(body: Any, url: str, query: Optional[Mapping[str, str]] = None, window: Optional[Mapping[str, Any]] = None) -> requests.Response:
    """A 200 of Kore.ai to a GET with `query`, or to a POST of `window` (call volume)."""
    if query is not None:
        request = requests.Request("GET", url, params=query).prepare()
    else:
        request = requests.Request("POST", url, json=window).prepare()
    response = requests.Response()
    response.status_code, response.request, response.url = 200, request, request.url
    response._content = json.dumps(body).encode()
    return response


def _events(events: List[Any], start: str = DAY_1, end: str = DAY_2) -> requests.Response:
    return _answer({"AgentUpdates": events}, f"{ACCOUNT_URL}/agentactivity", {"fromTimeStamp": start, "toTimeStamp": end})


def _emitted(extractor: components.WfmRecordExtractor, events: List[Any], start: str = DAY_1, end: str = DAY_2) -> List[Any]:
    return list(extractor.extract_records(_events(events, start, end)))


def _read(stream: str, **overrides: Any) -> EntrypointOutput:
    catalog = CatalogBuilder().with_stream(stream, SyncMode.full_refresh).build()
    configuration = config(**overrides)
    return read(SourceCallvolume(catalog, configuration, None), configuration, catalog)


def _errors(output: EntrypointOutput) -> List[str]:
    return [message.trace.error.message for message in output.errors]


def _activity_window(start: str = DAY_1) -> Any:
    return endpoint_request("agentactivity", fromTimeStamp=start, toTimeStamp=DAY_2)


# --- Agent activity: what an event is known by --------------------------------------------------------


@pytest.mark.parametrize(
    "differs", [{"AgentId": "a-0009"}, {"EventTime": "03/01/2024 2:00:00"}, {"Activity": "notready"}, {"ReasonCode": "2"}]
)
def test_an_event_that_differs_from_one_of_the_boundary_second_in_any_key_field_is_emitted(differs: Mapping[str, str]) -> None:
    extractor, boundary = _extractor(), event(1, "03/01/2024 1:00:00")
    other = {**boundary, **differs}
    _emitted(extractor, [boundary])

    assert _emitted(extractor, [boundary, other], start="2024-03-01T01:00:00Z") == [other]


def test_an_event_of_the_boundary_second_sent_again_with_its_fields_reordered_and_another_added_is_emitted_once() -> None:
    # Only the key tells events apart: the JSON around it may come back in another order or with more in it.
    extractor, boundary = _extractor(), event(1, "03/01/2024 1:00:00")
    _emitted(extractor, [boundary])
    again = {"accountId": "acc", **dict(reversed(list(boundary.items())))}

    assert _emitted(extractor, [again], start="2024-03-01T01:00:00Z") == []


def test_windows_read_at_once_each_remember_their_own_boundary_second() -> None:
    # With several workers the answers of two windows interleave: the second window's answer must not make the
    # first forget the events it already emitted.
    extractor, first, second = _extractor(), event(1, "03/01/2024 1:00:00"), event(2, "03/02/2024 5:00:00")
    _emitted(extractor, [first])
    _emitted(extractor, [second], start=DAY_2, end="2024-03-03T00:00:00Z")

    assert _emitted(extractor, [first], start="2024-03-01T01:00:00Z") == []


def test_the_events_of_a_boundary_second_stay_known_over_answers_that_all_end_in_it() -> None:
    # A second with more events than an answer holds is read on from itself again; the server need not send its
    # events in the same order each time, so those of every answer of that second are remembered.
    extractor = _extractor()
    e1, e2, e3 = event(1, "03/01/2024 1:00:00"), event(2, "03/01/2024 2:00:00"), event(3, "03/01/2024 2:00:00")
    _emitted(extractor, [e1, e2])
    assert _emitted(extractor, [e3], start="2024-03-01T02:00:00Z") == [e3]

    assert _emitted(extractor, [e2, e3], start="2024-03-01T02:00:00Z") == []


def test_a_read_on_answer_that_brings_back_an_earlier_second_fails_as_outside_its_window_naming_the_event(http_mocker: HttpMocker) -> None:
    # A server that ignores fromTimeStamp: once the read moved on past 1:00, the 1:00 event is outside what was
    # asked for, and the user must be told which event to report.
    early, late = event(1, "03/01/2024 1:00:00"), event(2, "03/01/2024 2:00:00")
    http_mocker.get(_activity_window(), activity([early]))
    http_mocker.get(_activity_window("2024-03-01T01:00:00Z"), activity([early, late]))
    http_mocker.get(_activity_window("2024-03-01T02:00:00Z"), activity([early, late]))

    output = _read("agent_activity", end_date=DAY_2)

    assert [row.record.data["AgentId"] for row in output.records] == ["a-0001", "a-0002"]
    assert _errors(output)[0] == (
        "Kore.ai sent the agentactivity record {'AgentId': 'a-0001', 'EventTime': '03/01/2024 1:00:00', 'Activity': "
        "'ready', 'ReasonCode': '1'} of 2024-03-01T01:00:00Z, outside the window 2024-03-01T02:00:00Z to "
        f"{DAY_2} that was asked for. The state would jump there and later syncs would skip what lies between, so "
        "the sync stops; report the record to Kore.ai."
    )


# --- Agent activity: when a window ends ---------------------------------------------------------------


@pytest.mark.parametrize("events", [[], [event(1, "yesterday")]], ids=["no-events", "no-readable-time"])
def test_a_window_whose_answer_has_no_readable_event_time_ends_after_one_request(http_mocker: HttpMocker, events: List[Any]) -> None:
    http_mocker.get(_activity_window(), activity(events))

    output = _read("agent_activity", end_date=DAY_2)

    assert [row.record.data for row in output.records] == events and not output.errors


def test_an_answer_not_oldest_first_fails_naming_its_window_and_what_to_do(http_mocker: HttpMocker) -> None:
    http_mocker.get(_activity_window(), activity([event(1, "03/01/2024 2:00:00"), event(2, "03/01/2024 1:00:00")]))

    output = _read("agent_activity", end_date=DAY_2)

    assert _errors(output)[0] == (
        f"Kore.ai's agent-activity answer of the window {DAY_1} to {DAY_2} holds 2 events, not oldest first: if it "
        "was cut short, the events it left out cannot be found by reading on, so the sync stops. Lower the window "
        "or report it to Kore.ai."
    )


# --- Agents -------------------------------------------------------------------------------------------


def test_agents_sent_again_at_a_new_offset_are_known_by_their_id_and_fail_naming_the_offset(http_mocker: HttpMocker) -> None:
    # The same agents, their fields in another order and a name changed meanwhile: still the page already received.
    http_mocker.get(endpoint_request("agents", offset=0, limit=3), array([agent(1), agent(2), agent(3)]))
    renamed = [{**dict(reversed(list(agent(index).items()))), "lastName": "Renamed"} for index in (1, 2, 3)]
    again = endpoint_request("agents", offset=3, limit=3)
    http_mocker.get(again, array(renamed))

    output = _read("agents")

    assert _errors(output)[0] == (
        "Kore.ai sent the agents page at offset 3 again: it ignores `offset`, so the stream stops rather than "
        "request the same page forever."
    )
    http_mocker.assert_number_of_calls(again, 1)


def test_agents_that_never_end_fail_the_stream_on_their_10000th_page() -> None:
    paginator = _component(CustomPaginationStrategy, DEFINITIONS["agents_paginator"]["pagination_strategy"])
    served: List[int] = []

    request = _answer([], f"{ACCOUNT_URL}/agents", {"offset": "0"}).request

    def endless() -> Iterator[requests.Response]:
        # New agents on every page: only the count of pages bounds the stream. One page past the bound, so that a
        # paginator missing it fails the test at once; one request shared by the answers, for speed.
        for index in range(10001):
            served.append(index)
            response = requests.Response()
            response.status_code, response.request, response._content = 200, request, json.dumps([agent(index)]).encode()
            yield response

    token = None
    with pytest.raises(UntrustworthyAnswerError) as refused:
        for answer in endless():
            token = paginator.next_page_token(answer, 1, None, token)

    assert len(served) == 10000 and token["offset"] == 9999
    assert refused.value.message == "Kore.ai's agents pages did not end after 10000 pages; the stream stops."


# --- Call volume: the words of a window that makes no progress ----------------------------------------


@pytest.mark.parametrize(
    "second_page, problem",
    [
        ([], "it says more rows follow but sent an empty page."),
        ([record(1), record(2), record(3)], "the page at skip 3 holds only rows it had already sent (it ignores `skip`)."),
    ],
    ids=["empty-page", "ignored-skip"],
)
def test_a_call_volume_window_that_makes_no_progress_fails_saying_why(second_page: List[Any], problem: str) -> None:
    paginator = _component(CustomPaginationStrategy, DEFINITIONS["call_volume_paginator"]["pagination_strategy"])
    token = None
    with pytest.raises(UntrustworthyAnswerError) as refused:
        for rows in ([record(1), record(2), record(3)], second_page):
            body = {"CallVolumeUpdate": rows, "hasMore": True, "totalCount": 9}
            token = paginator.next_page_token(_answer(body, URL, window=window_body(skip=token["skip"] if token else 0)), len(rows), None, token)

    assert refused.value.message == (
        f"Kore.ai is not paging the window {START} to {END}: {problem} The sync stops rather than request the same rows forever."
    )


# --- Time ---------------------------------------------------------------------------------------------


def test_now_is_utc_whatever_the_machines_zone() -> None:
    # The first-day search steps through midnights of now: they must be UTC midnights.
    with pendulum.test_local_timezone(pendulum.timezone(MACHINE_ZONE)):
        assert now_utc().utcoffset().total_seconds() == 0


@pytest.mark.parametrize("now, seconds", [("07:27:30", 30), ("07:27:30.500", 30), ("07:28:00.200", 0)])
def test_a_retry_after_given_as_an_http_date_is_waited_in_whole_seconds_rounded_up(monkeypatch: pytest.MonkeyPatch, now: str, seconds: int) -> None:
    # Rounded down, the retry would come back before Kore.ai's rate window frees up and be refused again.
    frozen = pendulum.parse(f"2026-10-21T{now}Z")
    monkeypatch.setattr(components.pendulum, "now", lambda tz=None: frozen)

    assert seconds_until_http_date("Wed, 21 Oct 2026 07:28:00 GMT") == seconds
