"""Pins what `source.py` decides before a read and what it says about a config or state it refuses, in-process:

- `first_day_with_rows`: the first day that holds an interval, from servers sorting oldest or newest first, at
  the search's lower bound, or none at all, in the requests its docstring promises;
- the first-day search through a read without `start_date`, against the loopback simulator (and HttpMocker for
  answers the simulator cannot give): its LOG line, the first window, every row, few requests; an account with
  no rows read from now on; a contradictory answer asked again, then a `config_error` asking for `start_date`;
- window sizing without `window_hours`: two days or less is one window and no probe; otherwise windows of about
  ten full pages at the account's density, from the search's count or a week's probe, with a server's page cap
  detected; 744 hours at most; a `window_hours` the user gives is used as is;
- the planning requests and `requests_per_minute`: taken from the read's budget, or waited out;
- a state: its cursor less the lookback is where the read starts, with no search; another stream's is ignored;
- `state_problems` and `config_problems`: one problem per wrong shape or value, worded as the user reads it.
"""

import itertools
import math
import types
from datetime import datetime, timedelta, timezone
from typing import Any, List, Mapping, Optional, Tuple

import backoff._sync
import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams import call_rate
from airbyte_cdk.sources.streams.http import rate_limiting
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest
from airbyte_cdk.test.models.outcome import ExpectedOutcome
from airbyte_cdk.test.state_builder import StateBuilder

import source_callvolume.source as source_module
from simulator import Simulator
from source_callvolume.components import floor_to_interval, format_utc, now_utc
from source_callvolume.source import EARLIEST_SEARCHED_DAY, SourceCallvolume, config_problems, first_day_with_rows, state_problems
from testkit import CURSOR_FIELD, ORG_ID, PAGE_SIZE, STREAM, URL, config, page, record, utc, window_request

UNPACED = 100000
PAGES_PER_WINDOW = 10
LONGEST_WINDOW_HOURS = 744
# A fixed account, read up to a fixed end: every probe, window and count below follows from these.
ACCOUNT_START = datetime(2024, 3, 1, tzinfo=timezone.utc)
ACCOUNT_DAYS = 10
END_DATE = "2024-03-11T00:00:00Z"
NOW = utc("2024-06-01T09:30:00Z")
# A server sorting newest first answers a page of the hours before the moment asked: a busy account's page holds
# hours, a quiet one's days.
PAGE_HOURS = 6
QUIET_PAGE_HOURS = 72

# --- Builders -----------------------------------------------------------------------------------------


def _read(settings: Mapping[str, Any], state: Optional[list] = None, fails: bool = False) -> EntrypointOutput:
    catalog = CatalogBuilder().with_stream(STREAM, SyncMode.incremental).build()
    outcome = ExpectedOutcome.EXPECT_EXCEPTION if fails else ExpectedOutcome.EXPECT_SUCCESS
    return read(SourceCallvolume(catalog, settings, state), settings, catalog, state, expected_outcome=outcome)


def _account(**options: Any) -> Simulator:
    """The fixed account: two queues from ACCOUNT_START for ACCOUNT_DAYS days."""
    return Simulator(queues=2, data_start=ACCOUNT_START, horizon=ACCOUNT_START + timedelta(days=ACCOUNT_DAYS), **options)


def _without_start_date(settings: Mapping[str, Any]) -> dict:
    return {key: value for key, value in settings.items() if key != "start_date"}


def _config(sim: Simulator, **overrides: Any) -> dict:
    """The fixed account's config up to END_DATE, unpaced, one worker (windows are not rebalanced for workers);
    `start_date` left out unless given."""
    return {**_without_start_date(sim.config()), "end_date": END_DATE, "requests_per_minute": UNPACED, "num_workers": 1, **overrides}


def _state(cursor: str, stream: str = STREAM) -> list:
    return StateBuilder().with_stream_state(stream, {CURSOR_FIELD: cursor}).build()


def _probe(to: str) -> HttpRequest:
    """A first-day probe of testkit's HttpMocker config: no `fromTimeStamp`."""
    return HttpRequest(url=URL, body={"orgId": ORG_ID, "toTimeStamp": to, "limit": PAGE_SIZE, "skip": 0})


def _probes(sim: Simulator) -> List[str]:
    """The `toTimeStamp` of every first-day probe, in order: the requests that leave `fromTimeStamp` out."""
    return [request["body"]["toTimeStamp"] for request in sim.requests if "fromTimeStamp" not in request["body"]]


def _first_pages(sim: Simulator) -> List[Tuple[str, str]]:
    """(fromTimeStamp, toTimeStamp) of every request for a first page from a time, in order: the density probe
    and the windows."""
    return [
        (request["body"]["fromTimeStamp"], request["body"]["toTimeStamp"])
        for request in sim.requests
        if "fromTimeStamp" in request["body"] and request["body"]["skip"] == 0
    ]


def _hours(window: Tuple[str, str]) -> float:
    return (utc(window[1]) - utc(window[0])).total_seconds() / 3600


def _read_exactly(output: EntrypointOutput, rows: List[Mapping[str, Any]]) -> bool:
    """Whether the read emitted each of these rows once, and nothing else."""
    return sorted(message.record.data["_id"] for message in output.records) == sorted(row["_id"] for row in rows)


def _logs(output: EntrypointOutput, prefix: str) -> List[str]:
    return [message.log.message for message in output.logs if message.log.message.startswith(prefix)]


def _window_line(rows_an_hour: float, page_rows: int, hours: int) -> str:
    return (
        f"No window_hours: {rows_an_hour:.1f} rows an hour in pages of {page_rows} rows make windows of {hours} hours "
        f"(about {PAGES_PER_WINDOW} full pages each)."
    )


def _ten_pages_of_hours(rows_an_hour: float, page_rows: int) -> int:
    return min(LONGEST_WINDOW_HOURS, math.ceil(PAGES_PER_WINDOW * page_rows / rows_an_hour))


# --- first_day_with_rows ------------------------------------------------------------------------------


class _History:
    """`rows_before` of an account whose intervals run from `first` on, each call one request: a server sorting
    oldest first answers the first interval itself (`page_hours` None), one sorting newest first the earliest of
    the `page_hours` before the moment asked."""

    def __init__(self, first: str, page_hours: Optional[int]) -> None:
        self.first, self.page_hours, self.asked = utc(first), page_hours, []

    def rows_before(self, moment: Any) -> Optional[Any]:
        self.asked.append(moment)
        if moment <= self.first:
            return None
        return self.first if self.page_hours is None else max(self.first, moment.subtract(hours=self.page_hours))


SERVERS = {"oldest-first": None, "newest-first": PAGE_HOURS, "newest-first-quiet": QUIET_PAGE_HOURS}


FIRST_DAYS = [
    ("2003-05-17T13:45:00Z", "2003-05-17T00:00:00Z"),
    ("2021-08-25T08:00:00Z", "2021-08-25T00:00:00Z"),
    ("2024-05-31T23:45:00Z", "2024-05-31T00:00:00Z"),
    ("2024-06-01T00:15:00Z", "2024-06-01T00:00:00Z"),
    ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z"),
    # History before the lower bound is read from the lower bound: the search has to stop somewhere.
    ("1999-07-01T00:00:00Z", "2000-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("page_hours", SERVERS.values(), ids=SERVERS.keys())
@pytest.mark.parametrize("first, midnight", FIRST_DAYS, ids=[first for first, _ in FIRST_DAYS])
def test_first_day_search_returns_the_midnight_of_the_first_day_with_rows(first: str, midnight: str, page_hours: Optional[int]) -> None:
    history = _History(first, page_hours)

    assert format_utc(first_day_with_rows(history.rows_before, NOW)) == midnight


def test_first_day_search_of_a_server_sorting_oldest_first_takes_two_requests() -> None:
    # The first answer's earliest row is on the first day; one request before that day confirms it.
    history = _History("2003-05-17T13:45:00Z", page_hours=None)

    first_day_with_rows(history.rows_before, NOW)

    assert [format_utc(moment) for moment in history.asked] == ["2024-06-02T00:00:00Z", "2003-05-17T00:00:00Z"]


def test_first_day_search_at_the_lower_bound_needs_no_confirming_request() -> None:
    history = _History("2000-01-01T00:00:00Z", page_hours=None)

    assert first_day_with_rows(history.rows_before, NOW) == EARLIEST_SEARCHED_DAY
    assert len(history.asked) == 1


@pytest.mark.parametrize("page_hours", [PAGE_HOURS, QUIET_PAGE_HOURS], ids=["busy", "quiet"])
@pytest.mark.parametrize("first", [first for first, _ in FIRST_DAYS])
def test_first_day_search_of_a_server_sorting_newest_first_takes_about_two_log2_days_requests(first: str, page_hours: int) -> None:
    history = _History(first, page_hours)

    first_day_with_rows(history.rows_before, NOW)

    days = max(2, (NOW - history.first).in_days())
    assert len(history.asked) <= 2 * math.log2(days) + 2


def test_first_day_search_doubles_back_then_bisects() -> None:
    # 1,012 days of history: the first request, ten doubling back (1 + 2 + ... + 512 days passes the first day),
    # then nine halving the last 512 days.
    history = _History("2021-08-25T08:00:00Z", PAGE_HOURS)

    first_day_with_rows(history.rows_before, NOW)

    assert len(history.asked) == 1 + 10 + 9
    doubling = [(history.asked[0] - moment).in_days() for moment in history.asked[1:11]]
    assert doubling == [2**n - 1 for n in range(1, 11)]


def test_first_day_search_goes_past_the_earliest_row_each_answer_shows() -> None:
    # Pages of three days: the first answer reaches 2024-05-30, the next two 05-27 and 05-23, the fourth finds
    # nothing before 05-20, and one more halves the four days left.
    history = _History("2024-05-20T08:00:00Z", QUIET_PAGE_HOURS)

    assert format_utc(first_day_with_rows(history.rows_before, NOW)) == "2024-05-20T00:00:00Z"
    assert len(history.asked) == 1 + 3 + 1


def test_first_day_search_of_an_account_without_rows_is_none_after_one_request() -> None:
    asked: List[Any] = []

    def no_rows(moment: Any) -> None:
        asked.append(moment)

    assert first_day_with_rows(no_rows, NOW) is None
    assert len(asked) == 1


# --- The first-day search through a read --------------------------------------------------------------


def test_a_read_without_start_date_starts_at_the_first_day_found_in_two_requests() -> None:
    with _account() as sim:
        output = _read(_config(sim))
        expected = sim.records()
        probes, windows = _probes(sim), _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert _logs(output, "No start_date") == ["No start_date: the account's first interval is on 2024-03-01; reading from there."]
    # Up to the midnight after END_DATE, then up to the first day itself, which holds no row before it.
    assert probes == ["2024-03-12T00:00:00Z", "2024-03-01T00:00:00Z"]
    assert windows[0][0] == "2024-03-01T00:00:00Z"


def test_window_hours_and_num_workers_the_user_gives_are_kept_by_a_read_that_searches_the_first_day() -> None:
    # 240 hours in windows of 7 make 35, not a multiple of 3 workers: neither the density nor the workers may
    # change what the user chose.
    with _account() as sim:
        output = _read(_config(sim, window_hours=7, num_workers=3))
        expected = sim.records()
        windows = sorted(_first_pages(sim))  # three workers ask in no fixed order

    assert not output.errors and _read_exactly(output, expected)
    assert len(windows) == 35 and [_hours(window) for window in windows[:-1]] == [7] * 34
    assert not _logs(output, "No window_hours") and not _logs(output, "No num_workers")


def test_an_account_whose_first_interval_ends_at_midnight_starts_on_the_day_it_began() -> None:
    # The 23:45 interval is the first day's, though it ends on the next: the search goes by interval starts.
    late_start = datetime(2024, 2, 29, 23, 45, tzinfo=timezone.utc)
    with Simulator(queues=2, data_start=late_start, horizon=ACCOUNT_START + timedelta(days=1)) as sim:
        output = _read(_config(sim, end_date="2024-03-02T00:00:00Z"))
        expected = sim.records()
        probes, windows = _probes(sim), _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert _logs(output, "No start_date") == ["No start_date: the account's first interval is on 2024-02-29; reading from there."]
    assert probes == ["2024-03-03T00:00:00Z", "2024-02-29T00:00:00Z"]
    assert windows[0][0] == "2024-02-29T00:00:00Z"


def test_rows_without_a_readable_start_are_taken_for_the_day_before_the_moment_asked_and_the_search_still_finds_the_first_day() -> None:
    # Each answer then proves rows only before the moment asked, not a day earlier: taking a day more for them
    # started the read a day early, and taking them for no rows read the account from now on.
    with _account(unreadable_interval_start=True) as sim:
        output = _read(_config(sim))
        expected = sim.records()
        windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert _logs(output, "No start_date") == ["No start_date: the account's first interval is on 2024-03-01; reading from there."]
    assert windows[0][0] == "2024-03-01T00:00:00Z"


def test_first_day_search_finds_a_first_day_years_back_within_twenty_requests() -> None:
    # A server sorting newest first with small pages: the first answer does not hold the first day.
    first = datetime(2009, 3, 14, 6, tzinfo=timezone.utc)
    with Simulator(queues=2, data_start=first, horizon=first + timedelta(days=2), order="desc", page_cap=20) as sim:
        output = _read(_config(sim, end_date="2012-07-01T00:00:00Z"))
        expected = sim.records()
        probes, windows = _probes(sim), _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert _logs(output, "No start_date") == ["No start_date: the account's first interval is on 2009-03-14; reading from there."]
    assert 2 < len(probes) <= 20
    assert probes[0] == "2012-07-02T00:00:00Z" and all(probe.endswith("T00:00:00Z") for probe in probes)
    assert windows[0][0] == "2009-03-14T00:00:00Z"


def test_an_account_without_call_volume_is_read_from_now_on() -> None:
    with Simulator(queues=0, days=10) as sim:
        before = format_utc(floor_to_interval(now_utc()))
        output = _read(_without_start_date(sim.config(requests_per_minute=UNPACED)))
        after = format_utc(floor_to_interval(now_utc()))
        probes, windows = _probes(sim), _first_pages(sim)

    assert not output.errors and not output.records
    assert _logs(output, "No start_date") == ["No start_date and the account has no call volume yet: reading from now on."]
    # Nothing to size: one window from the quarter hour of now, no density probe.
    assert len(probes) == 1 and len(windows) == 1 and windows[0][0] in (before, after)


def test_a_contradictory_first_answer_is_asked_again_and_the_read_still_works() -> None:
    with _account(contradictory_probe="once") as sim:
        output = _read(_config(sim))
        expected = sim.records()
        answers = [request["answer"] for request in sim.requests if "fromTimeStamp" not in request["body"]]

    assert not output.errors and _read_exactly(output, expected)
    assert answers == ["contradictory_probe", "page", "page"]


def test_a_first_day_search_that_contradicts_itself_three_times_asks_for_a_start_date() -> None:
    with _account(contradictory_probe=True) as sim:
        output = _read(_config(sim), fails=True)
        total = len(sim.records(to_ts="2024-03-12T00:00:00Z"))
        probes, requests = _probes(sim), sim.requests

    assert not output.records and not output.state_messages
    assert len(requests) == len(probes) == 3
    (error,) = [message.trace.error for message in output.errors]
    assert error.failure_type == FailureType.config_error
    assert error.message == (
        "Looking for the account's first day, Kore.ai answered an empty page that says more rows exist before "
        f"2024-03-12T00:00:00Z (hasMore True, totalCount {total}), 3 times. The connector cannot tell where the "
        "history starts: set `start_date` to the first day to read."
    )


def test_two_contradictory_answers_are_asked_again_and_the_third_is_believed(http_mocker: HttpMocker) -> None:
    contradiction, first_probe = page([], has_more=True, total=5), _probe("2024-03-03T00:00:00Z")
    http_mocker.post(first_probe, [contradiction, contradiction, page([record(1)], has_more=False)])
    http_mocker.post(_probe("2024-03-01T00:00:00Z"), page([], has_more=False, total=0))
    http_mocker.post(window_request(), page([record(1)], has_more=False))
    output = _read(_without_start_date(config()))

    assert not output.errors and [message.record.data["_id"] for message in output.records] == [record(1)["_id"]]
    http_mocker.assert_number_of_calls(first_probe, 3)


@pytest.mark.parametrize(
    "has_more, total", [(True, 0), (None, 7), (None, 1)], ids=["has-more-but-total-zero", "no-has-more-but-a-total", "a-total-of-one"]
)
def test_an_empty_page_that_claims_more_rows_either_way_is_a_contradiction(http_mocker: HttpMocker, has_more: Optional[bool], total: int) -> None:
    # Regression: believing such a page made the account look empty, and the history was never read.
    http_mocker.post(_probe("2024-03-03T00:00:00Z"), [page([], has_more=has_more, total=total)] * 3)
    output = _read(_without_start_date(config()), fails=True)

    assert not output.records and not output.state_messages
    assert [message.trace.error.failure_type for message in output.errors] == [FailureType.config_error]
    assert "set `start_date`" in output.errors[0].trace.error.message


def test_an_answer_that_is_not_json_during_the_search_ends_the_read_with_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The retries' back-off would take minutes: their sleeps are skipped (module-local, not the simulator's).
    skipped = types.SimpleNamespace(sleep=lambda seconds: None)
    monkeypatch.setattr(backoff._sync, "time", skipped)
    monkeypatch.setattr(rate_limiting, "time", skipped)
    with _account(fail_forever_after=1) as sim:
        output = _read(_config(sim), fails=True)
        windows = _first_pages(sim)

    # The first answer held rows, the next did not parse: the search must not take the account for empty.
    assert not output.records and not output.state_messages and windows == []
    errors = [message.trace.error for message in output.errors]
    assert errors and {error.failure_type for error in errors} == {FailureType.transient_error}
    assert "not complete callvolume JSON" in errors[-1].message


# --- A state ------------------------------------------------------------------------------------------


def test_a_read_with_a_state_and_no_start_date_starts_a_lookback_before_the_cursor_without_searching() -> None:
    with _account() as sim:
        output = _read(_config(sim), _state("2024-03-09T12:00:00Z"))
        expected = sim.records("2024-03-09T09:00:00Z", END_DATE)
        probes, windows = _probes(sim), _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert probes == [] and _logs(output, "No start_date") == []
    assert windows == [("2024-03-09T09:00:00Z", END_DATE)]


def test_a_read_of_two_days_without_window_hours_or_num_workers_is_one_window_without_a_probe() -> None:
    # No request before the read, so no latency to choose workers from: the windows are left as they are.
    with _account() as sim:
        settings = {key: value for key, value in _config(sim, start_date="2024-03-09T00:00:00Z").items() if key != "num_workers"}
        output = _read(settings)
        expected = sim.records("2024-03-09T00:00:00Z", END_DATE)
        windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert windows == [("2024-03-09T00:00:00Z", END_DATE)]


def test_windows_after_a_state_come_in_full_rounds_of_the_workers_over_what_is_left_to_read() -> None:
    # 144 hours from the cursor less the lookback, in 14-hour windows of ten 10-row pages at the 7.2 rows an hour
    # the probe finds: 11 windows, made 10 of 15 hours for 5 workers. Rounded over the whole history from
    # start_date instead, they would be 16 hours long, and 9.
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z", page_size=10, num_workers=5), _state("2024-03-05T03:00:00Z"))
        expected = sim.records("2024-03-05T00:00:00Z", END_DATE)
        probe, *windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert probe == ("2024-03-05T00:00:00Z", END_DATE)
    assert len(windows) == 10 and min(windows)[0] == "2024-03-05T00:00:00Z"


def test_an_empty_state_of_the_stream_reads_from_start_date() -> None:
    # What a reset leaves: call_volume's state without a cursor. Reading it as one raised AttributeError.
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-09T00:00:00Z"), StateBuilder().with_stream_state(STREAM, {}).build())
        expected = sim.records("2024-03-09T00:00:00Z", END_DATE)
        windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert windows == [("2024-03-09T00:00:00Z", END_DATE)]


def test_the_state_of_another_stream_is_ignored() -> None:
    # Were it taken for call_volume's, the planner would see 39 hours left to read and send no density probe.
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z"), _state("2024-03-09T12:00:00Z", stream="agent_activity"))
        expected = sim.records()
        windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert windows[0] == ("2024-03-01T00:00:00Z", "2024-03-08T00:00:00Z")


# --- Window sizing ------------------------------------------------------------------------------------


def test_a_range_of_exactly_two_days_is_one_window_without_a_probe() -> None:
    # The default lookback (180 min) from 03:00 reads from midnight: 48 hours to END_DATE.
    with _account() as sim:
        output = _read(_config(sim), _state("2024-03-09T03:00:00Z"))
        requests = sim.requests

    assert not output.errors and _logs(output, "No window_hours") == []
    assert {(request["body"]["fromTimeStamp"], request["body"]["toTimeStamp"]) for request in requests} == {("2024-03-09T00:00:00Z", END_DATE)}


def test_a_range_just_over_two_days_is_sized_by_a_probe_from_the_cursor_less_the_lookback() -> None:
    with _account() as sim:
        output = _read(_config(sim, lookback_minutes=60), _state("2024-03-08T20:00:00Z"))
        windows = _first_pages(sim)

    assert not output.errors and len(_logs(output, "No window_hours")) == 1
    # The probe covers the whole 53 hours the read will read (less than its week), then the read starts there too.
    assert windows[0] == ("2024-03-08T19:00:00Z", END_DATE)
    assert windows[1][0] == "2024-03-08T19:00:00Z"


def test_windows_hold_ten_full_pages_at_the_density_a_week_s_probe_finds() -> None:
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z", page_size=50))
        expected = sim.records()
        rows_an_hour = len(sim.records("2024-03-01T00:00:00Z", "2024-03-08T00:00:00Z")) / (7 * 24)
        probe, *windows = _first_pages(sim)

    hours = _ten_pages_of_hours(rows_an_hour, 50)
    assert not output.errors and _read_exactly(output, expected)
    assert probe == ("2024-03-01T00:00:00Z", "2024-03-08T00:00:00Z")
    assert _logs(output, "No window_hours") == [_window_line(rows_an_hour, 50, hours)]
    assert windows[0][0] == "2024-03-01T00:00:00Z" and windows[-1][1] == END_DATE
    assert [_hours(window) for window in windows[:-1]] == [hours] * (len(windows) - 1)


def test_the_search_s_first_count_sizes_the_windows_without_a_probe() -> None:
    # The search's first answer counted every row up to the end: 240 hours of them, in pages the server caps at 20.
    # Sorted newest first, the later answers hold rows too, and count fewer: they must not be taken for the total.
    with _account(page_cap=20, order="desc") as sim:
        output = _read(_config(sim))
        rows_an_hour = len(sim.records()) / (ACCOUNT_DAYS * 24)
        windows = _first_pages(sim)

    hours = _ten_pages_of_hours(rows_an_hour, 20)
    assert not output.errors
    assert _logs(output, "No window_hours") == [_window_line(rows_an_hour, 20, hours)]
    assert [window for window in windows if window[0] == "2024-03-01T00:00:00Z"] == [windows[0]]
    assert [_hours(window) for window in windows[:-1]] == [hours] * (len(windows) - 1)


@pytest.mark.parametrize("hostile", [{}, {"omit_has_more": True}, {"omit_total_count": True}], ids=["both", "no-has-more", "no-total-count"])
def test_a_server_page_cap_below_page_size_is_what_a_window_s_pages_hold(hostile: Mapping[str, bool]) -> None:
    with _account(page_cap=37, **hostile) as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z", page_size=500))
        expected = sim.records()

    assert not output.errors and _read_exactly(output, expected)
    (line,) = _logs(output, "No window_hours")
    assert " in pages of 37 rows " in line


def test_an_account_sparse_for_its_page_size_is_read_in_windows_of_744_hours() -> None:
    # The week's probe fits in one page of 5000: no cap is taken from it.
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z", page_size=5000))
        rows_an_hour = len(sim.records("2024-03-01T00:00:00Z", "2024-03-08T00:00:00Z")) / (7 * 24)
        windows = _first_pages(sim)[1:]  # after the week's probe

    assert not output.errors
    assert _logs(output, "No window_hours") == [_window_line(rows_an_hour, 5000, LONGEST_WINDOW_HOURS)]
    assert windows == [("2024-03-01T00:00:00Z", END_DATE)]


def test_an_empty_account_is_read_in_windows_of_744_hours_planned_with_the_default_page_and_budget() -> None:
    with Simulator(queues=0, days=40) as sim:
        output = _read(sim.config())
        start = utc(sim.config()["start_date"])
        probe, *windows = _first_pages(sim)

    assert not output.errors and not output.records
    assert probe == (format_utc(start), format_utc(start.add(days=7)))
    assert _logs(output, "No window_hours") == [_window_line(0, 1000, LONGEST_WINDOW_HOURS)]
    assert " at 50 requests a minute: " in _logs(output, "No num_workers")[0]
    # 40 days: one window of 744 hours, then the rest up to now.
    assert len(windows) == 2 and _hours(windows[0]) == LONGEST_WINDOW_HOURS


def test_window_hours_given_by_the_user_is_used_and_no_probe_is_sent() -> None:
    with _account() as sim:
        output = _read(_config(sim, start_date="2024-03-01T00:00:00Z", window_hours=30))
        expected = sim.records()
        windows = _first_pages(sim)

    assert not output.errors and _read_exactly(output, expected)
    assert _logs(output, "No window_hours") == []
    assert [_hours(window) for window in windows] == [30] * 8


# --- The planning requests and requests_per_minute ----------------------------------------------------


class _BudgetSpent(Exception):
    """Raised where the read's budget would wait: the requests sent by then are those the budget allowed."""


def _stop_at_the_first_budget_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(seconds: float) -> None:
        raise _BudgetSpent(f"the budget would wait {seconds:.0f} s")

    monkeypatch.setattr(call_rate, "time", types.SimpleNamespace(sleep=stop))


def _planner_clock(monkeypatch: pytest.MonkeyPatch, step: float) -> List[float]:
    """The planner's clock advances `step` seconds a reading; returns the waits it would sleep."""
    readings = itertools.count()
    waited: List[float] = []
    monkeypatch.setattr(source_module, "time", types.SimpleNamespace(monotonic=lambda: 100 + step * next(readings), sleep=waited.append))
    return waited


def _budget_read(budget: int) -> Tuple[EntrypointOutput, int]:
    """A search of two requests, then a read of far more pages than `budget`; the requests the server received."""
    with _account(page_cap=5) as sim:
        output = _read(_config(sim, requests_per_minute=budget), fails=True)
        return output, len(sim.requests)


def test_planning_requests_within_a_fifth_of_the_budget_are_taken_from_the_read_s(monkeypatch: pytest.MonkeyPatch) -> None:
    _stop_at_the_first_budget_wait(monkeypatch)
    waited = _planner_clock(monkeypatch, step=5)

    output, received = _budget_read(budget=10)

    # Two search requests and eight of the read: the minute's ten, not twelve.
    assert received == 10
    assert waited == [] and _logs(output, "Waiting") == []


def test_planning_requests_over_a_fifth_of_the_budget_wait_until_they_are_a_minute_old(monkeypatch: pytest.MonkeyPatch) -> None:
    _stop_at_the_first_budget_wait(monkeypatch)
    # The two search requests at 100 s and 105 s, the plan done at 110 s: 50 s until the first is a minute old.
    waited = _planner_clock(monkeypatch, step=5)

    output, received = _budget_read(budget=9)

    assert waited == [50]
    assert _logs(output, "Waiting") == [
        "Waiting 50 s so that the first-day search's 2 requests and the read stay within requests_per_minute."
    ]
    # After the wait the read has its whole budget.
    assert received == 2 + 9


def test_planning_requests_already_a_minute_old_need_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    _stop_at_the_first_budget_wait(monkeypatch)
    waited = _planner_clock(monkeypatch, step=40)

    output, received = _budget_read(budget=9)

    assert waited == [] and _logs(output, "Waiting") == []
    assert received == 2 + 9


# --- state_problems -----------------------------------------------------------------------------------

STATE_SHAPE = (
    'a JSON list of STREAM state messages, e.g. [{"type": "STREAM", "stream": {"stream_descriptor": '
    '{"name": "call_volume"}, "stream_state": {"intervalEndTimeStamp": "2024-03-01T10:15:00Z"}}}]'
)


def _stream_message(stream: Any) -> dict:
    return {"type": "STREAM", "stream": stream}


def _cursor_message(cursor: Any, name: str = STREAM) -> dict:
    return _stream_message({"stream_descriptor": {"name": name}, "stream_state": {CURSOR_FIELD: cursor}})


WRONG_SHAPES = [
    ({STREAM: {CURSOR_FIELD: "2024-03-01T00:00:00Z"}}, "dict"),
    ("2024-03-01", "str"),
    ([1, 2, "3"], "a list holding int, str"),
    ([{"type": "LEGACY", "data": {}}], "a list holding 'LEGACY' messages"),
    ([_stream_message({"stream_state": {}})], "a list holding 'STREAM' messages"),
    ([_stream_message(STREAM)], "a list holding 'STREAM' messages"),
    ([_stream_message({"stream_descriptor": {"name": STREAM}, "stream_state": ["2024-03-01T00:00:00Z"]})], "a list holding 'STREAM' messages"),
]


@pytest.mark.parametrize(
    "state, found", WRONG_SHAPES,
    ids=["legacy-dict", "string", "scalars", "legacy-message", "no-stream-descriptor", "stream-not-a-mapping", "stream-state-a-list"],
)
def test_a_state_of_the_wrong_shape_is_one_problem_naming_what_was_found(state: Any, found: str) -> None:
    assert state_problems(state) == [
        f"The file given with --state holds {found}, not {STATE_SHAPE}: pass the state the last sync emitted, or none."
    ]


@pytest.mark.parametrize("cursor", ["yesterday", 1709287200, "2024-03-01 10:15:00"])
def test_a_cursor_that_is_not_a_time_is_a_problem_naming_the_cursor(cursor: Any) -> None:
    assert state_problems([_cursor_message(cursor)]) == [
        f"The state's intervalEndTimeStamp is {cursor!r}, not a UTC time like 2024-03-01T10:15:00Z: fix the state "
        "file, or reset the stream to sync from `start_date` again."
    ]


def test_a_bad_cursor_after_the_state_of_another_stream_is_still_a_problem() -> None:
    # The other streams' states come first in a four-stream sync's state file.
    assert state_problems([_cursor_message("2024-03-01", name="queues"), _cursor_message("yesterday")]) == [
        "The state's intervalEndTimeStamp is 'yesterday', not a UTC time like 2024-03-01T10:15:00Z: fix the state "
        "file, or reset the stream to sync from `start_date` again."
    ]


def test_credentials_of_a_kind_neither_branch_names_are_told_the_kinds_there_are() -> None:
    # Regression: an unknown auth_type was told "`credentials.client_secret` is missing".
    assert config_problems(config(credentials={"auth_type": "oauth", "client_id": "an-app"})) == [
        "`credentials.auth_type` ('oauth') must be one of 'client_credentials', 'jwt': The connector signs a fresh "
        "token for every request with the app's Client Secret. For example: client_credentials."
    ]


GOOD_STATES = [
    None,
    [],
    [_cursor_message("2024-03-01T10:15:00Z")],
    [_cursor_message("2024-03-01T10:15:00.000Z")],
    [_stream_message({"stream_descriptor": {"name": STREAM}})],
    [_stream_message({"stream_descriptor": {"name": STREAM}, "stream_state": None})],
    [_stream_message({"stream_descriptor": {"name": STREAM}, "stream_state": {}})],
    # Another stream's state is not this connector's to judge.
    [_cursor_message("not a time", name="agent_activity"), _cursor_message("2024-03-01T10:15:00Z")],
]


@pytest.mark.parametrize(
    "state", GOOD_STATES,
    ids=["none", "empty", "cursor", "cursor-with-milliseconds", "no-stream-state", "null-stream-state", "empty-stream-state", "other-stream"],
)
def test_a_usable_state_has_no_problem(state: Any) -> None:
    assert state_problems(state) == []


# --- config_problems' wording -------------------------------------------------------------------------

PAGE_SIZE_FIX = "Rows asked for per request. The server may send fewer; the connector follows hasMore either way. For example: 1000."
LOOKBACK_FIX = (
    "Each incremental sync re-reads this many minutes before the last interval it received, to pick up intervals "
    "that Kore.ai published late or revised after they ended. A multiple of 15. For example: 180."
)
ACCOUNT_ID_FIX = "The AgentAssist account ID (Kore.ai's AgentAssist settings show it; it is part of the API's URL). For example: 64a5c0f3b7e1d2a9c8f0e123."
WINDOW_HOURS_FIX = (
    "Hours of intervals read per window; state is saved after each window. Leave it empty and the connector sizes "
    "windows from the account's density so that each holds about ten full pages: fewest requests. For example: 24."
)
CLIENT_CREDENTIALS = {"auth_type": "client_credentials", "client_id": "an-app", "client_secret": "a-secret"}

WRONG_VALUES = [
    ({"page_size": "12"}, f"`page_size` ('12') must be of type integer: {PAGE_SIZE_FIX}"),
    ({"account_id": "has space"}, f"`account_id` ('has space') must be in the form this field takes: {ACCOUNT_ID_FIX}"),
    ({"lookback_minutes": 0}, f"`lookback_minutes` (0) must be at least 15: {LOOKBACK_FIX}"),
    ({"lookback_minutes": 20}, f"`lookback_minutes` (20) must be a multiple of 15: {LOOKBACK_FIX}"),
    ({"window_hours": 745}, f"`window_hours` (745) must be at most 744: {WINDOW_HOURS_FIX}"),
    (
        {"credentials": {"auth_type": "client_credentials", "client_secret": "a-secret"}},
        "`credentials.client_id` is missing: The JWT app's Client ID. For example: cs-5e5f7c1a-0000-4000-8000-000000000001.",
    ),
    (
        {"credentials": {"auth_type": "jwt", "jwt": "not-a-token"}},
        "`credentials.jwt` must be in the form this field takes: A token signed for the app; sent as is, so it stops "
        "working when it expires. For example: eyJhbGciOiJIUzI1NiJ9.eyJhcHBJZCI6ImNzLTEifQ.c2lnbmF0dXJl.",
    ),
    (
        {"credentials": {**CLIENT_CREDENTIALS, "client_id": 123}},
        "`credentials.client_id` (123) must be of type string: The JWT app's Client ID. For example: cs-5e5f7c1a-0000-4000-8000-000000000001.",
    ),
]


@pytest.mark.parametrize(
    "overrides, problem", WRONG_VALUES,
    ids=["type", "pattern", "minimum", "multiple-of", "maximum", "credentials-required", "jwt-branch", "client-credentials-branch"],
)
def test_a_wrong_value_is_one_problem_naming_the_field_what_it_must_be_and_the_spec_s_example(overrides: Mapping[str, Any], problem: str) -> None:
    assert config_problems(config(**overrides)) == [problem]


def test_a_field_without_an_example_is_explained_by_its_description_alone() -> None:
    # Both the field's `type` and its `oneOf` refuse the value: one problem, said once, and without the value: the
    # credentials hold secrets, and whatever stands in their place may be one.
    assert config_problems(config(credentials="an-app")) == [
        "`credentials` must be of type object: A JWT app with the \"WFM Integration\" API scope. Give its "
        "Client ID and Secret and the connector signs a fresh token for every request (needed when the app enforces "
        "JTI), or paste a ready token."
    ]


def test_problems_come_in_the_order_of_their_field_names_and_hide_the_date_checks() -> None:
    # `host` comes first in the spec; the date checks wait until the schema's problems are fixed.
    problems = config_problems(config(host="not a host", account_id="a b", start_date="2024-02-30T00:00:00Z"))

    assert [problem.split("`")[1] for problem in problems] == ["account_id", "host"]
