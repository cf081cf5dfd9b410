"""Pins how the call_volume stream pages, windows and checkpoints, and that no answer moves it unchecked (HttpMocker).

- pagination: skip grows by the rows received, follows hasMore over short pages, stops on hasMore=false;
  without hasMore it follows totalCount, without both it reads on to an empty page;
- paging that makes no progress (an empty page that says more, an ignored skip, hasMore past totalCount,
  hasMore=false short of totalCount) ends the window with an error, within the pages it needs plus two;
- a window whose totalCount changes between pages is read again, at most five times;
- windows: consecutive request bodies share their edge, the first starts at start_date, the last ends at end_date;
- state: the cursor is the last interval received, never the window end, never a row outside the window,
  and an off-grid state cursor is put back on the quarter hour.
"""

from typing import Any, List, Mapping, Optional

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.test.state_builder import StateBuilder

from source_callvolume.source import SourceCallvolume
from testkit import STREAM, config, page, record, window_request


def _catalog(sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(STREAM, sync_mode).build()


def _read(config: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog, state: Any = None) -> EntrypointOutput:
    return read(SourceCallvolume(catalog, config, state), config, catalog, state)


def _ids(output: EntrypointOutput) -> List[str]:
    return [message.record.data["_id"] for message in output.records]


def _error(output: EntrypointOutput) -> str:
    return " ".join(message.trace.error.message for message in output.errors)


def _cursor(output: EntrypointOutput) -> Optional[str]:
    states = output.state_messages
    return states[-1].state.stream.stream_state.intervalEndTimeStamp if states else None


# --- Paging -------------------------------------------------------------------------------------------


def test_pagination_continues_on_short_page_while_has_more(http_mocker: HttpMocker) -> None:
    # The server caps pages at 2 rows although 3 were asked for: skip must follow the rows received.
    http_mocker.post(window_request(skip=0), page([record(1), record(2)], has_more=True, total=5))
    http_mocker.post(window_request(skip=2), page([record(3), record(4)], has_more=True, total=5))
    http_mocker.post(window_request(skip=4), page([record(5)], has_more=False, total=5))

    output = _read(config(), _catalog())

    assert _ids(output) == [record(index)["_id"] for index in range(1, 6)]


def test_pagination_stops_on_has_more_false_without_an_extra_request(http_mocker: HttpMocker) -> None:
    first, next_one = window_request(skip=0), window_request(skip=3)
    http_mocker.post(first, page([record(1), record(2), record(3)], has_more=False))
    http_mocker.post(next_one, page([], has_more=False))

    output = _read(config(), _catalog())

    assert len(output.records) == 3
    http_mocker.assert_number_of_calls(next_one, 0)


def test_pagination_without_has_more_follows_total_count(http_mocker: HttpMocker) -> None:
    # Regression: a page without hasMore ended the window after its first page, 10 of 14 rows unread.
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=None, total=5))
    http_mocker.post(window_request(skip=3), page([record(4), record(5)], has_more=None, total=5))

    output = _read(config(), _catalog())

    assert _ids(output) == [record(index)["_id"] for index in range(1, 6)]


def test_pagination_without_has_more_and_total_count_reads_on_to_an_empty_page(http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2)], has_more=None, total=-1))
    http_mocker.post(window_request(skip=2), page([record(3)], has_more=None, total=-1))
    last = window_request(skip=3)
    http_mocker.post(last, page([], has_more=None, total=-1))

    output = _read(config(), _catalog())

    assert _ids(output) == [record(index)["_id"] for index in range(1, 4)] and not output.errors
    http_mocker.assert_number_of_calls(last, 1)


def test_an_empty_page_that_says_has_more_ends_the_window_with_an_error(http_mocker: HttpMocker) -> None:
    # Regression (issue 15): deleting this guard left every test green while the sync looped forever.
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=True, total=9))
    empty = window_request(skip=3)
    http_mocker.post(empty, page([], has_more=True, total=9))

    output = _read(config(), _catalog(SyncMode.incremental))

    assert _ids(output) == [record(index)["_id"] for index in range(1, 4)]
    assert "not paging" in _error(output) and "empty page" in _error(output)
    http_mocker.assert_number_of_calls(empty, 1)
    assert _cursor(output) in (None, "2024-03-01T00:00:00Z")


def test_a_server_that_ignores_skip_ends_the_window_on_the_repeated_page(http_mocker: HttpMocker) -> None:
    same = page([record(1), record(2), record(3)], has_more=True, total=-1)
    http_mocker.post(window_request(skip=0), same)
    repeated = window_request(skip=3)
    http_mocker.post(repeated, same)

    output = _read(config(), _catalog())

    assert "ignores `skip`" in _error(output)
    http_mocker.assert_number_of_calls(repeated, 1)


def test_has_more_past_total_count_ends_the_window_within_the_pages_it_needs_plus_one(http_mocker: HttpMocker) -> None:
    # New rows on every page and hasMore forever: only totalCount (6 rows, two pages) bounds it.
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=True, total=6))
    http_mocker.post(window_request(skip=3), page([record(4), record(5), record(6)], has_more=True, total=6))
    beyond = window_request(skip=6)
    http_mocker.post(beyond, page([record(7), record(8), record(9)], has_more=True, total=6))

    output = _read(config(), _catalog())

    assert "past its own totalCount" in _error(output)
    http_mocker.assert_number_of_calls(beyond, 0)


def test_has_more_false_short_of_total_count_fails_rather_than_lose_rows(http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2)], has_more=False, total=5))

    output = _read(config(), _catalog())

    assert _ids(output) == [record(1)["_id"], record(2)["_id"]]
    assert "totalCount is 5" in _error(output)


@pytest.mark.parametrize("second_total", [5, 3], ids=["total-grows", "total-shrinks"])
def test_window_is_read_again_when_total_count_changes_between_pages(http_mocker: HttpMocker, second_total: int) -> None:
    # Regression: a row inserted or removed before the offset between two pages shifted every later row, and
    # plain offsets skipped the row at the page boundary. A changed totalCount, up or down, re-reads the window.
    http_mocker.post(
        window_request(skip=0),
        [page([record(0), record(1), record(2)], has_more=True, total=4), page([record(1), record(2), record(3)], has_more=False, total=3)],
    )
    http_mocker.post(window_request(skip=3), page([record(3)], has_more=False, total=second_total))

    output = _read(config(), _catalog())

    assert set(_ids(output)) == {record(index)["_id"] for index in range(4)}
    assert not output.errors


def test_a_window_whose_rows_keep_moving_fails_after_five_re_reads(http_mocker: HttpMocker) -> None:
    # totalCount differs between the first and the second page on every read: MAX_WINDOW_RESTARTS bounds it.
    first_page = window_request(skip=0)
    http_mocker.post(first_page, page([record(1), record(2), record(3)], has_more=True, total=7))
    http_mocker.post(window_request(skip=3), page([record(4), record(5), record(6)], has_more=True, total=8))

    output = _read(config(), _catalog())

    assert "read again 5 times" in _error(output)
    http_mocker.assert_number_of_calls(first_page, 6)
    assert set(_ids(output)) == {record(index)["_id"] for index in range(1, 7)}


# --- Windows and state --------------------------------------------------------------------------------


def test_windows_share_their_edges_from_start_date_to_end_date(http_mocker: HttpMocker) -> None:
    edges = ["2024-03-01T00:00:00Z", "2024-03-01T08:00:00Z", "2024-03-01T16:00:00Z", "2024-03-02T00:00:00Z"]
    requests = [window_request(start=start, end=end) for start, end in zip(edges, edges[1:])]
    for request in requests:
        http_mocker.post(request, page([], has_more=False))

    output = _read(config(window_hours=8), _catalog())

    assert not output.errors
    for request in requests:
        http_mocker.assert_number_of_calls(request, 1)


def test_state_is_the_last_interval_received_not_the_window_end(http_mocker: HttpMocker) -> None:
    http_mocker.post(
        window_request(skip=0),
        page([record(1, end="2024-03-01T10:00:00.000Z"), record(2, end="2024-03-01T10:15:00.000Z")], has_more=False),
    )

    output = _read(config(), _catalog(SyncMode.incremental))

    assert _cursor(output) == "2024-03-01T10:15:00Z"


def test_a_row_from_decades_ahead_ends_the_window_and_never_reaches_the_state(http_mocker: HttpMocker) -> None:
    # Regression: one row ending in 2070 carried the state there, and every later sync read nothing, exit 0.
    future = record(9, end="2070-01-01T00:15:00.000Z")
    http_mocker.post(window_request(skip=0), page([record(1), future, record(2)], has_more=False))

    output = _read(config(), _catalog(SyncMode.incremental))

    assert _ids(output) == [record(1)["_id"]]
    assert future["_id"] in _error(output) and "outside" in _error(output)
    assert all(message.state.stream.stream_state.intervalEndTimeStamp < "2024-03-02" for message in output.state_messages)


def test_a_row_one_interval_past_the_window_end_is_within_the_window(http_mocker: HttpMocker) -> None:
    # Under the "overlapping" filter an interval that starts at the window's end is the window's too.
    edge = record(1, end="2024-03-02T00:15:00.000Z")
    http_mocker.post(window_request(skip=0), page([edge], has_more=False))

    output = _read(config(), _catalog(SyncMode.incremental))

    assert _ids(output) == [edge["_id"]] and not output.errors


def test_a_row_without_a_readable_interval_end_is_emitted_and_leaves_the_cursor(http_mocker: HttpMocker) -> None:
    unreadable = {**record(2), "intervalEndTimeStamp": "soon"}
    http_mocker.post(window_request(skip=0), page([record(1, end="2024-03-01T10:00:00.000Z"), unreadable], has_more=False))

    output = _read(config(), _catalog(SyncMode.incremental))

    assert _ids(output) == [record(1)["_id"], record(2)["_id"]]
    assert _cursor(output) == "2024-03-01T10:00:00Z"


def test_incremental_sync_starts_a_lookback_before_the_state(http_mocker: HttpMocker) -> None:
    state = StateBuilder().with_stream_state(STREAM, {"intervalEndTimeStamp": "2024-03-01T12:00:00Z"}).build()
    http_mocker.post(window_request(start="2024-03-01T09:00:00Z"), page([record(7, end="2024-03-01T11:00:00.000Z")], has_more=False))

    output = _read(config(lookback_minutes=180), _catalog(SyncMode.incremental), state)

    assert _ids(output) == [record(7)["_id"]]
    # The re-read interval is older than the state: the state must not move back.
    assert _cursor(output) == "2024-03-01T12:00:00Z"


def test_an_off_grid_state_cursor_starts_the_next_window_on_the_quarter_hour(http_mocker: HttpMocker) -> None:
    # Regression: from 12:07 every window edge was off the grid, and the "inside [from, to]" filter lost the
    # interval straddling each edge.
    state = StateBuilder().with_stream_state(STREAM, {"intervalEndTimeStamp": "2024-03-01T12:07:00Z"}).build()
    on_grid = window_request(start="2024-03-01T09:00:00Z")
    http_mocker.post(on_grid, page([record(7, end="2024-03-01T11:00:00.000Z")], has_more=False))

    output = _read(config(lookback_minutes=180), _catalog(SyncMode.incremental), state)

    assert _ids(output) == [record(7)["_id"]]
    http_mocker.assert_number_of_calls(on_grid, 1)


@pytest.mark.parametrize("host", ["platform.kore.ai", "https://platform.kore.ai", "https://platform.kore.ai/", " platform.kore.ai "])
def test_host_is_accepted_with_or_without_scheme_and_trailing_slash(http_mocker: HttpMocker, host: str) -> None:
    http_mocker.post(window_request(skip=0), page([record(1)], has_more=False))

    output = _read(config(host=host), _catalog())

    assert _ids(output) == [record(1)["_id"]]


def test_fields_the_api_adds_later_pass_through_and_null_counts_arrive_as_absent(http_mocker: HttpMocker) -> None:
    row = {**record(1), "csatScore": None, "newMetricFromKore": 5}
    http_mocker.post(window_request(skip=0), page([row], has_more=False))

    output = _read(config(), _catalog())

    # The CDK's serializer leaves out null values; destinations store the missing field as null.
    assert [message.record.data for message in output.records] == [{**record(1), "newMetricFromKore": 5}]

