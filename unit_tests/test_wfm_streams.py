"""Pins the queues, agents and agent_activity streams with HttpMocker (issue 11).

- queues: one request; `Description` as well as `description` lands in `description`;
- agents: offset paging that goes on over a short page and ends on an empty one; the same page twice is an error;
  so is a row that is not a JSON object, once the retries ran out;
- agent_activity: EventTime kept raw and normalised to EventTimeUtc (UTC, one-digit hours); an answer cut short is
  read on from its latest event until nothing new comes, and an answer smaller than one already seen is whole;
  more events in one second than an answer holds, or an event outside its window, fail loudly; the state is the
  newest event received.
"""

import types
from typing import Any, List, Mapping

import backoff._sync
import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http import rate_limiting
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.test.state_builder import StateBuilder

from source_callvolume.source import SourceCallvolume
from testkit import activity, agent, array, config, endpoint_request, event

DAY_1, DAY_2, DAY_3 = "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z"
#: The error handler's max_retries (manifest.yaml): with the back-off's sleeps skipped, only the count bounds them.
RETRIES = 60


def _read(stream: str, sync_mode: SyncMode = SyncMode.full_refresh, state: Any = None, **overrides: Any) -> EntrypointOutput:
    catalog = CatalogBuilder().with_stream(stream, sync_mode).build()
    configuration = config(**overrides)
    return read(SourceCallvolume(catalog, configuration, state), configuration, catalog, state)


def _data(output: EntrypointOutput) -> List[Mapping[str, Any]]:
    return [message.record.data for message in output.records]


def _error(output: EntrypointOutput) -> str:
    return " ".join(message.trace.error.message for message in output.errors)


def _window(start: str = DAY_1, end: str = DAY_2) -> Any:
    return endpoint_request("agentactivity", fromTimeStamp=start, toTimeStamp=end)


# --- queues -------------------------------------------------------------------------------------------


def test_queues_take_description_whichever_way_kore_spells_it(http_mocker: HttpMocker) -> None:
    http_mocker.get(
        endpoint_request("queues"),
        array([{"accountId": "acc", "collectionPointId": "qu-1", "description": "Sales"}, {"accountId": "acc", "collectionPointId": "qu-2", "Description": "Support"}]),
    )

    output = _read("queues")

    assert _data(output) == [
        {"accountId": "acc", "collectionPointId": "qu-1", "description": "Sales"},
        {"accountId": "acc", "collectionPointId": "qu-2", "description": "Support"},
    ]


# --- agents -------------------------------------------------------------------------------------------


def test_agents_page_on_over_a_short_page_and_end_on_an_empty_one(http_mocker: HttpMocker) -> None:
    # The server caps pages at 2 although 3 were asked for: a short page is not the end, an empty one is.
    http_mocker.get(endpoint_request("agents", offset=0, limit=3), array([agent(1), agent(2)]))
    http_mocker.get(endpoint_request("agents", offset=2, limit=3), array([agent(3)]))
    last = endpoint_request("agents", offset=3, limit=3)
    http_mocker.get(last, array([]))

    output = _read("agents")

    assert [row["agentId"] for row in _data(output)] == ["a-0001", "a-0002", "a-0003"] and not output.errors
    http_mocker.assert_number_of_calls(last, 1)


def test_agents_from_a_server_that_ignores_offset_end_with_an_error(http_mocker: HttpMocker) -> None:
    http_mocker.get(endpoint_request("agents", offset=0, limit=3), array([agent(1), agent(2), agent(3)]))
    again = endpoint_request("agents", offset=3, limit=3)
    http_mocker.get(again, array([agent(1), agent(2), agent(3)]))

    output = _read("agents")

    assert "ignores `offset`" in _error(output)
    http_mocker.assert_number_of_calls(again, 1)


def test_an_agent_that_is_not_a_json_object_fails_the_sync_once_the_retries_ran_out(
    http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: such a row ended the sync with a bare AttributeError from inside the paginator.
    skipped = types.SimpleNamespace(sleep=lambda seconds: None)  # the retries' back-off would take minutes
    monkeypatch.setattr(backoff._sync, "time", skipped)
    monkeypatch.setattr(rate_limiting, "time", skipped)
    first_page = endpoint_request("agents", offset=0, limit=3)
    http_mocker.get(first_page, array([agent(1), "a-0002"]))

    output = _read("agents")

    http_mocker.assert_number_of_calls(first_page, 1 + RETRIES)
    assert not output.records
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error
    assert "not complete agents JSON (cut short, an HTML error page, or rows that are not JSON objects)" in _error(output)


# --- agent activity -----------------------------------------------------------------------------------


def test_event_time_is_kept_and_normalised_to_utc(http_mocker: HttpMocker) -> None:
    http_mocker.get(_window(), activity([event(1, "03/01/2024 2:13:12"), event(2, "03/01/2024 14:05:00", "notready", "3")]))
    http_mocker.get(_window(start="2024-03-01T14:05:00Z"), activity([event(2, "03/01/2024 14:05:00", "notready", "3")]))

    output = _read("agent_activity", end_date=DAY_2)

    assert [(row["EventTime"], row["EventTimeUtc"]) for row in _data(output)] == [
        ("03/01/2024 2:13:12", "2024-03-01T02:13:12Z"),
        ("03/01/2024 14:05:00", "2024-03-01T14:05:00Z"),
    ]


def test_a_capped_answer_is_read_on_from_its_latest_event_until_nothing_new_comes(http_mocker: HttpMocker) -> None:
    # The server cuts every answer at 3 events, keeping the earliest: 7 events need three answers and a fourth
    # that brings nothing new.
    times = ["03/01/2024 1:00:00", "03/01/2024 2:00:00", "03/01/2024 3:00:00", "03/01/2024 3:00:00", "03/01/2024 4:00:00", "03/01/2024 5:00:00", "03/01/2024 6:00:00"]
    events = [event(index, moment) for index, moment in enumerate(times)]
    http_mocker.get(_window(), activity(events[0:3]))
    http_mocker.get(_window(start="2024-03-01T03:00:00Z"), activity(events[2:5]))
    http_mocker.get(_window(start="2024-03-01T04:00:00Z"), activity(events[4:7]))
    last = _window(start="2024-03-01T06:00:00Z")
    http_mocker.get(last, activity(events[6:7]))

    output = _read("agent_activity", SyncMode.incremental, end_date=DAY_2)

    keys = {(row["AgentId"], row["EventTime"]) for row in _data(output)}
    assert keys == {(e["AgentId"], e["EventTime"]) for e in events}
    http_mocker.assert_number_of_calls(last, 1)
    assert output.state_messages[-1].state.stream.stream_state.EventTimeUtc == "2024-03-01T06:00:00Z"


def test_an_answer_smaller_than_one_already_seen_needs_no_confirming_request(http_mocker: HttpMocker) -> None:
    http_mocker.get(_window(), activity([event(1, "03/01/2024 1:00:00"), event(2, "03/01/2024 2:00:00"), event(3, "03/01/2024 3:00:00")]))
    http_mocker.get(_window(start="2024-03-01T03:00:00Z"), activity([event(3, "03/01/2024 3:00:00")]))
    http_mocker.get(_window(DAY_2, DAY_3), activity([event(1, "03/02/2024 1:00:00")]))
    unneeded = _window(start="2024-03-02T01:00:00Z", end=DAY_3)
    http_mocker.get(unneeded, activity([event(1, "03/02/2024 1:00:00")]))

    output = _read("agent_activity", end_date=DAY_3, num_workers=1)

    assert len(output.records) == 4 and not output.errors
    http_mocker.assert_number_of_calls(unneeded, 0)


def test_more_events_in_one_second_than_an_answer_holds_fail_rather_than_lose_some(http_mocker: HttpMocker) -> None:
    same_second = [event(index, "03/01/2024 3:00:00") for index in range(3)]
    http_mocker.get(_window(), activity(same_second))
    http_mocker.get(_window(start="2024-03-01T03:00:00Z"), activity(same_second))

    output = _read("agent_activity", end_date=DAY_2)

    assert "share 2024-03-01T03:00:00Z" in _error(output)


def test_an_event_outside_its_window_fails_the_window_and_never_reaches_the_state(http_mocker: HttpMocker) -> None:
    http_mocker.get(_window(), activity([event(1, "03/01/2024 1:00:00"), event(2, "01/01/2070 1:00:00")]))

    output = _read("agent_activity", SyncMode.incremental, end_date=DAY_2)

    assert [row["AgentId"] for row in _data(output)] == ["a-0001"]
    assert "outside" in _error(output)
    assert all(m.state.stream.stream_state.EventTimeUtc < "2030" for m in output.state_messages if hasattr(m.state.stream.stream_state, "EventTimeUtc"))


def test_an_incremental_sync_starts_a_lookback_before_the_newest_event(http_mocker: HttpMocker) -> None:
    state = StateBuilder().with_stream_state("agent_activity", {"EventTimeUtc": "2024-03-01T12:00:00Z"}).build()
    late = event(4, "03/01/2024 11:30:00")
    http_mocker.get(_window(start="2024-03-01T09:00:00Z", end="2024-03-02T09:00:00Z"), activity([late]))
    http_mocker.get(_window(start="2024-03-01T11:30:00Z", end="2024-03-02T09:00:00Z"), activity([late]))

    output = _read("agent_activity", SyncMode.incremental, state, end_date="2024-03-02T09:00:00Z", lookback_minutes=180)

    assert [row["AgentId"] for row in _data(output)] == ["a-0004"]
    assert output.state_messages[-1].state.stream.stream_state.EventTimeUtc == "2024-03-01T12:00:00Z"
