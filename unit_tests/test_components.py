"""Pins what components.py decides that the stream tests (test_call_volume_stream, test_errors, test_wfm_streams) do
not reach: the figures, boundaries and messages of each component, built as the manifest wires it.

- time: every timestamp is written in UTC whatever its zone and the machine's; the quarter-hour grid;
- tokens: HS256, `appId` the exact string of the config, `exp` ten minutes after `iat`, a new `jti` per attempt;
  a pasted JWT goes out unchanged;
- the guard: after 900 s without an answer the server meant, every attempt fails with a transient error whose
  message names the account's budget when the last refusal was a 429; a redirect is refused naming its target;
  a Retry-After nobody can read is dropped;
- deadlines: the connection of an answer still arriving 120 s after its attempt began is shut, that of an answer
  already read never;
- progress: a LOG line at most once a minute with rows, requests, 429s, the window reached, the share of the
  range and the minutes left;
- back-off: a 429 waits as Retry-After says (at most 600 s) or 1 s without it; anything else 2, 4 ... 256 s;
- errors: which exceptions and 200s are retried and which are config errors naming `host`;
- paging: 1000 pages bound a window without totalCount; fields of the wrong type are ignored; a totalCount that
  changes across a page without one still re-reads the window;
- the window check: a row may end from the window's start to one interval past its end, written with or
  without milliseconds; one a second outside fails the window as a system error;
- config and state: NormalizeConfig's trimming, host and start date; CursorOnTheGrid's migration.
"""

import gc
import json
import logging
import re
import socket
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Tuple

import jwt
import pendulum
import pytest
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomBackoffStrategy,
    CustomErrorHandler,
    CustomPaginationStrategy,
    SelectiveAuthenticator,
)
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_callvolume import components
from source_callvolume.components import (
    CursorOnTheGrid,
    NormalizeConfig,
    PermanentFaultError,
    floor_to_interval,
    format_api,
    format_utc,
    parse_utc,
    parsed_body,
    parsed_page,
    requested_window,
    sign_token,
)
from source_callvolume.source import SourceCallvolume, resolved_manifest
from testkit import ACCOUNT_URL, CLIENT_SECRET, END, START, STREAM, URL, config, page, record, window_body, window_request

DEFINITIONS = resolved_manifest()["definitions"]
#: A Client ID made of digits: interpolated without care it would become the number 12345, which Kore.ai refuses.
DIGIT_CLIENT_ID = "12345"
#: A zone half an hour off UTC: a helper that used the machine's zone instead of UTC would show it in every field.
MACHINE_ZONE = "Asia/Kolkata"
#: Where the fake monotonic clocks start: any value works, none of the code may assume 0.
T0 = 1000.0
#: An HTTP date in the past, whenever the tests run.
PAST_HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


# --- Builders -----------------------------------------------------------------------------------------


def _component(model: Any, definition: Mapping[str, Any], configuration: Optional[Mapping[str, Any]] = None) -> Any:
    """A component as the manifest declares it, built by the CDK's own factory."""
    return ModelToComponentFactory().create_component(model, definition, configuration or config())


def _authenticator(configuration: Optional[Mapping[str, Any]] = None) -> components.KoreAuthenticator:
    return _component(SelectiveAuthenticator, DEFINITIONS["authenticator"], configuration)


def _answer(
    status: int = 200,
    body: Any = None,
    *,
    url: str = URL,
    window: Optional[Mapping[str, Any]] = None,
    query: Optional[Mapping[str, str]] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> requests.Response:
    """An answer of Kore.ai to a POST of `window` (call volume) or, with `query`, to a GET (the other endpoints)."""
    if query is not None:
        request = requests.Request("GET", url, params=query).prepare()
    else:
        request = requests.Request("POST", url, json=window_body() if window is None else window).prepare()
    response = requests.Response()
    response.status_code, response.request, response.url = status, request, request.url
    response._content = (body if isinstance(body, str) else json.dumps({} if body is None else body)).encode()
    response.headers.update(headers or {})
    return response


def _page(rows: Any, *, end: str = END, **fields: Any) -> requests.Response:
    """A 200 call-volume page of the window from START to `end`; `fields` are hasMore, totalCount ..."""
    return _answer(body={"CallVolumeUpdate": rows, **fields}, window=window_body(end=end))


def _trace(error: AirbyteTracedException) -> Any:
    """The TRACE error the user sees for an exception."""
    return error.as_airbyte_message().trace.error


def _read(configuration: Mapping[str, Any]) -> EntrypointOutput:
    catalog = CatalogBuilder().with_stream(STREAM, SyncMode.full_refresh).build()
    return read(SourceCallvolume(catalog, configuration, None), configuration, catalog)


class _Clock:
    """time.monotonic, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(components.time, "monotonic", fake.monotonic)
    return fake


# --- Time ---------------------------------------------------------------------------------------------


def test_times_are_written_in_utc_whatever_their_zone_and_the_machines() -> None:
    with pendulum.test_local_timezone(pendulum.timezone(MACHINE_ZONE)):
        moment = pendulum.datetime(2024, 6, 1, 11, 52, 30, 250000, tz="Europe/Paris")

        assert format_utc(moment) == "2024-06-01T09:52:30Z"
        assert format_api(moment) == "2024-06-01T09:52:30.250Z"
        assert floor_to_interval(moment) == pendulum.datetime(2024, 6, 1, 9, 45, tz="UTC")
        assert format_utc(floor_to_interval(moment)) == "2024-06-01T09:45:00Z"


@pytest.mark.parametrize(
    "moment, quarter",
    [("09:00:00", "09:00:00"), ("09:14:59", "09:00:00"), ("09:15:00", "09:15:00"), ("09:59:59", "09:45:00")],
)
def test_the_grid_is_the_quarter_hour_at_or_before_a_moment(moment: str, quarter: str) -> None:
    assert format_utc(floor_to_interval(parse_utc(f"2024-06-01T{moment}Z"))) == f"2024-06-01T{quarter}Z"


def test_the_grid_of_a_moment_given_in_a_half_hour_zone_is_the_utc_quarter_hour() -> None:
    # Regression: the minute was taken in the moment's own zone: 11:07 in Kolkata (05:37Z) floored to 05:00Z.
    moment = pendulum.datetime(2024, 6, 1, 11, 7, tz="Asia/Kolkata")

    assert format_utc(floor_to_interval(moment)) == "2024-06-01T05:30:00Z"


@pytest.mark.parametrize("text", ["2024-06-01T09:45:00Z", "2024-06-01T09:45:00.000Z"])
def test_a_utc_time_is_read_with_or_without_milliseconds(text: str) -> None:
    assert parse_utc(text) == pendulum.datetime(2024, 6, 1, 9, 45, tz="UTC")


@pytest.mark.parametrize("value", ["2024-06-01", "2024-06-01T09:45:00+02:00", " 2024-06-01T09:45:00Z", "soon", "", None, 1717235100])
def test_anything_but_a_utc_time_reads_as_no_time(value: Any) -> None:
    assert parse_utc(value) is None


# --- Tokens -------------------------------------------------------------------------------------------


def _claims(token: str, secret: str = CLIENT_SECRET) -> Mapping[str, Any]:
    """The claims of an HS256 token, its signature checked (and only HS256 accepted); expiry is not checked."""
    return jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})


def test_a_signed_token_names_the_app_and_lives_ten_minutes_from_its_issue() -> None:
    token = sign_token("0123", CLIENT_SECRET, issued_at=1_700_000_000)

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = dict(_claims(token))
    assert re.fullmatch("[0-9a-f]{32}", claims.pop("jti"))
    assert claims == {"appId": "0123", "iat": 1_700_000_000, "exp": 1_700_000_600}


def test_a_token_signed_now_is_issued_now_and_never_shares_its_jti() -> None:
    before = int(time.time())
    first, second = _claims(sign_token("0123", CLIENT_SECRET)), _claims(sign_token("0123", CLIENT_SECRET))
    after = int(time.time())

    assert before <= first["iat"] <= after and first["exp"] == first["iat"] + 600
    assert first["jti"] != second["jti"]


def test_every_attempt_carries_a_fresh_token_for_the_client_id_kept_a_string() -> None:
    credentials = {"auth_type": "client_credentials", "client_id": DIGIT_CLIENT_ID, "client_secret": CLIENT_SECRET}
    authenticator = _authenticator(config(credentials=credentials))
    request = requests.Request("POST", URL, json=window_body()).prepare()

    # The CDK hands the same prepared request back for a retry: each attempt must be signed anew.
    first = _claims(authenticator(request).headers["auth"])
    second = _claims(authenticator(request).headers["auth"])

    assert first["appId"] == second["appId"] == DIGIT_CLIENT_ID
    assert first["jti"] != second["jti"]


def test_a_pasted_jwt_is_sent_unchanged() -> None:
    pasted = sign_token("cs-1", "another-secret-long-enough-for-hs256", issued_at=1_700_000_000)
    authenticator = _authenticator(config(credentials={"auth_type": "jwt", "jwt": pasted}))

    assert authenticator(requests.Request("POST", URL, json=window_body()).prepare()).headers["auth"] == pasted


# --- The guard: 15 minutes without an answer ----------------------------------------------------------

NO_ANSWER = (
    "Kore.ai has answered no request successfully for {minutes} minutes ({cause}): the sync stops here rather than "
    "start more windows. The state emitted so far covers only rows read; run the sync again later."
)
THROUGH_EVERY_RETRY = "through every retry"
BUDGET_SPENT = (
    "every answer was a 429: the account's budget of 60 requests a minute is spent, and other clients of the account, "
    "such as the contact centre's WFM tool, may be using it"
)


def _attempt(authenticator: components.KoreAuthenticator) -> requests.PreparedRequest:
    return authenticator(requests.Request("POST", URL, json=window_body()).prepare())


def _attempted_at_t0() -> components.KoreAuthenticator:
    """An authenticator whose stream made its first attempt at T0: the fifteen minutes count from there."""
    authenticator = _authenticator()
    _attempt(authenticator)
    return authenticator


def test_fifteen_minutes_without_an_answer_are_allowed_and_a_moment_more_fails_every_attempt(clock: _Clock) -> None:
    authenticator = _attempted_at_t0()

    clock.now = T0 + 900
    assert "auth" in _attempt(authenticator).headers
    clock.now = T0 + 900.5
    with pytest.raises(PermanentFaultError) as refused:
        _attempt(authenticator)

    trace = _trace(refused.value)
    assert trace.message == trace.internal_message == NO_ANSWER.format(minutes=15, cause=THROUGH_EVERY_RETRY)
    assert trace.failure_type == FailureType.transient_error


def test_the_fifteen_minutes_of_a_stream_start_at_its_first_attempt_not_when_the_source_is_built(clock: _Clock) -> None:
    # Regression: streams run one after another, each with its own authenticator built with the source; after a
    # call_volume backfill of over 15 minutes, the queues stream failed its very first attempt.
    authenticator = _authenticator()

    clock.now = T0 + 1800
    assert "auth" in _attempt(authenticator).headers
    clock.now = T0 + 1800 + 900
    assert "auth" in _attempt(authenticator).headers
    clock.now = T0 + 1800 + 901
    with pytest.raises(PermanentFaultError):
        _attempt(authenticator)


@pytest.mark.parametrize(
    "statuses, cause",
    [((503, 429), BUDGET_SPENT), ((429, 503), THROUGH_EVERY_RETRY)],
    ids=["last-refusal-a-429", "last-refusal-a-503"],
)
def test_the_give_up_names_the_accounts_budget_when_the_last_refusal_was_a_429(clock: _Clock, statuses: Tuple[int, ...], cause: str) -> None:
    authenticator = _attempted_at_t0()
    for status in statuses:
        clock.now += 100
        authenticator.update_from_response(None, _answer(status))

    clock.now = T0 + 1000
    with pytest.raises(PermanentFaultError) as refused:
        _attempt(authenticator)

    assert _trace(refused.value).message == NO_ANSWER.format(minutes=17, cause=cause)


@pytest.mark.parametrize(
    "status, body",
    [(200, {"CallVolumeUpdate": [record(1)], "hasMore": False}), (400, {}), (401, {}), (403, {}), (404, {})],
    ids=["page", "400", "401", "403", "404"],
)
def test_a_page_or_a_refusal_the_server_meant_starts_the_fifteen_minutes_again(clock: _Clock, status: int, body: Any) -> None:
    authenticator = _attempted_at_t0()
    clock.now = T0 + 800
    authenticator.update_from_response(None, _answer(status, body))

    clock.now = T0 + 1700
    _attempt(authenticator)
    clock.now = T0 + 1701
    with pytest.raises(PermanentFaultError):
        _attempt(authenticator)


@pytest.mark.parametrize(
    "status, body",
    [(503, {}), (429, {}), (200, "<html>maintenance</html>"), (500, {"CallVolumeUpdate": []})],
    ids=["503", "429", "200-not-json", "500-shaped-like-a-page"],
)
def test_server_errors_rate_limits_and_broken_pages_do_not_count_as_answers(clock: _Clock, status: int, body: Any) -> None:
    authenticator = _attempted_at_t0()
    clock.now = T0 + 800
    authenticator.update_from_response(None, _answer(status, body))

    clock.now = T0 + 901
    with pytest.raises(PermanentFaultError):
        _attempt(authenticator)


# --- The guard: redirects and Retry-After ------------------------------------------------------------


@pytest.mark.parametrize("location, named", [("https://evil.example/steal", "https://evil.example/steal"), ("", "nowhere")])
def test_a_redirect_is_refused_as_a_config_error_naming_its_target(http_mocker: HttpMocker, location: str, named: str) -> None:
    # HttpMocker answers any request it was not told about with an error: a followed redirect would show.
    http_mocker.post(window_request(skip=0), HttpResponse(body="", status_code=302, headers={"Location": location}))

    output = _read(config())

    assert output.records == []
    assert output.errors[0].trace.error.failure_type == FailureType.config_error
    assert output.errors[0].trace.error.message == (
        f"Kore.ai answered 302, redirecting to {named}. The connector follows no redirect, so the token goes only to "
        "the configured `host`: if that host is the Kore.ai environment you mean and you trust it, set `host` to it."
    )


@pytest.mark.parametrize("retry_after, passed_on, wait", [("soon", None, 1.0), (PAST_HTTP_DATE, "0", 1.0), ("12", "12", 12.0)])
def test_a_retry_after_is_waited_in_seconds_and_one_nobody_can_read_is_dropped(
    retry_after: str, passed_on: Optional[str], wait: float
) -> None:
    authenticator = _authenticator()
    request = _attempt(authenticator)
    refusal = _answer(429, headers={"Retry-After": retry_after})
    refusal.request = request

    # What requests does with an answer before the CDK sees it: the hooks the authenticator put on the request.
    refusal = requests.hooks.dispatch_hook("response", request.hooks, refusal)

    # The CDK's request budget reads the header as seconds too.
    assert refusal.headers.get("Retry-After") == passed_on
    assert _backoff().backoff_time(refusal, 1) == wait


# --- Deadlines ----------------------------------------------------------------------------------------


class _Socket:
    def __init__(self, clock: "_WatcherClock") -> None:
        self._clock, self.shut_at, self.how = clock, None, None

    def shutdown(self, how: int) -> None:
        self.shut_at, self.how = self._clock.now, how


class _WatcherClock:
    """time.monotonic and time.sleep for the test and the threads it starts; other threads keep real time.

    The watcher's sleep moves the clock instead of waiting, from `run()` on; past `HORIZON` it stops the
    watcher, so that no thread outlives the test."""

    HORIZON = T0 + 300

    def __init__(self, real_sleep: Callable[[float], None], real_monotonic: Callable[[], float]) -> None:
        self.now = T0
        self._real_sleep, self._real_monotonic = real_sleep, real_monotonic
        self._ours = {threading.current_thread()}
        self._before = set(threading.enumerate())
        self._go, self.idle, self._stop = threading.Event(), threading.Event(), threading.Event()

    def _faked(self) -> bool:
        current = threading.current_thread()
        return current in self._ours or current not in self._before

    def monotonic(self) -> float:
        return self.now if self._faked() else self._real_monotonic()

    def sleep(self, seconds: float) -> None:
        if not self._faked():
            return self._real_sleep(seconds)
        self._go.wait(5)
        if self._stop.is_set() or self.now >= self.HORIZON:
            self.idle.set()
            self._stop.wait(5)
            raise SystemExit  # ends the watcher thread
        self.now += seconds

    def run(self) -> None:
        """Lets the watcher run to the horizon, and waits (in real time, 2 s at most) until it got there."""
        self._go.set()
        assert self.idle.wait(2), "the watcher never reached the horizon"

    def stop(self) -> None:
        self._go.set()
        self._stop.set()


@pytest.fixture
def watcher_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_WatcherClock]:
    fake = _WatcherClock(time.sleep, time.monotonic)
    monkeypatch.setattr(components.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(components.time, "sleep", fake.sleep)
    report = threading.excepthook
    # SystemExit is how the fake clock ends a watcher; any other exception of a thread is still reported.
    monkeypatch.setattr(threading, "excepthook", lambda args: None if args.exc_type is SystemExit else report(args))
    before = set(threading.enumerate())
    yield fake
    fake.stop()
    for thread in set(threading.enumerate()) - before:
        thread.join(5)


def _arriving_answer(clock: _WatcherClock) -> requests.Response:
    """An answer whose body is still arriving: its connection is held, with a socket that records its shutdown."""
    response = _answer()
    response.raw = SimpleNamespace(connection=SimpleNamespace(sock=_Socket(clock)))
    return response


def test_an_answer_still_arriving_120_s_after_its_attempt_began_has_its_connection_shut(watcher_clock: _WatcherClock) -> None:
    deadlines = components._Deadlines()
    answer = _arriving_answer(watcher_clock)
    deadlines.start(answer.request)
    # The headers come in 3 s after the attempt began: the deadline counts from the attempt, not from them.
    watcher_clock.now = T0 + 3
    deadlines.watch(answer)

    watcher_clock.run()

    assert answer.raw.connection.sock.shut_at == T0 + 120
    assert answer.raw.connection.sock.how == socket.SHUT_RDWR


def test_an_answer_read_in_time_is_never_shut_and_does_not_shield_the_answers_after_it(watcher_clock: _WatcherClock) -> None:
    deadlines = components._Deadlines()
    read_in_time, still_arriving = _arriving_answer(watcher_clock), _arriving_answer(watcher_clock)
    socket_of_the_read_one = read_in_time.raw.connection.sock
    for answer in (read_in_time, still_arriving):
        deadlines.start(answer.request)
        deadlines.watch(answer)
    read_in_time.raw.connection = None  # what urllib3 does once the body is read and the connection released

    watcher_clock.run()

    assert socket_of_the_read_one.shut_at is None
    assert still_arriving.raw.connection.sock.shut_at == T0 + 120


def test_an_answer_already_gone_does_not_stop_the_watcher_from_shutting_the_answers_after_it(watcher_clock: _WatcherClock) -> None:
    # The watcher holds answers weakly: one the CDK has dropped is None to it, and must not end its thread.
    deadlines = components._Deadlines()
    gone, still_arriving = _arriving_answer(watcher_clock), _arriving_answer(watcher_clock)
    for answer in (gone, still_arriving):
        deadlines.start(answer.request)
        deadlines.watch(answer)
    del gone, answer
    gc.collect()

    watcher_clock.run()

    assert still_arriving.raw.connection.sock.shut_at == T0 + 120


def test_the_guard_gives_every_attempt_of_a_request_its_own_120_s(watcher_clock: _WatcherClock, monkeypatch: pytest.MonkeyPatch) -> None:
    deadlines = components._Deadlines()
    monkeypatch.setattr(components, "_DEADLINES", deadlines)
    authenticator = _authenticator()
    request = _attempt(authenticator)
    # The first attempt timed out; the CDK retries the same prepared request 50 s after the first began.
    watcher_clock.now = T0 + 50
    authenticator(request)
    answer = _arriving_answer(watcher_clock)
    answer.request = request
    watcher_clock.now = T0 + 53
    requests.hooks.dispatch_hook("response", request.hooks, answer)

    watcher_clock.run()

    assert answer.raw.connection.sock.shut_at == T0 + 170


def test_one_watcher_thread_serves_every_answer_and_never_keeps_the_process_alive(watcher_clock: _WatcherClock) -> None:
    deadlines = components._Deadlines()
    before = set(threading.enumerate())

    for _ in range(2):
        answer = _arriving_answer(watcher_clock)
        deadlines.start(answer.request)
        deadlines.watch(answer)

    assert [(thread.name, thread.daemon) for thread in set(threading.enumerate()) - before] == [("callvolume-deadlines", True)]


# --- Progress -----------------------------------------------------------------------------------------


@pytest.fixture
def progress(caplog: pytest.LogCaptureFixture) -> Callable[[], List[str]]:
    """The progress lines of the `airbyte` logger, the one whose records become LOG messages."""
    caplog.set_level(logging.INFO, logger="airbyte")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "airbyte" and r.getMessage().startswith("Progress")]


def test_progress_is_said_once_a_minute_with_rows_requests_429s_the_window_reached_and_the_time_left(
    clock: _Clock, progress: Callable[[], List[str]]
) -> None:
    authenticator = _authenticator()  # start_date to end_date: one day
    answers = [
        (10, _page([record(1), record(2), record(3)], end="2024-03-01T03:00:00Z")),
        (20, _answer(429)),
        (59, _page([record(4), record(5)], end="2024-03-01T06:00:00Z")),
        (60, _page([record(6)], end="2024-03-01T06:00:00Z")),  # a minute after the start: the first line
        (100, _page([], end="2024-03-01T06:00:00Z")),
        # Windows are read in parallel: an earlier window finishing late does not move the window reached back.
        (1200, _page([record(7)], end="2024-03-01T03:00:00Z")),
    ]
    for at, answer in answers:
        clock.now = T0 + at
        authenticator.update_from_response(answer.request, answer)

    assert progress() == [
        "Progress of callvolume: 6 rows read with 4 requests (1 refused with 429); windows read up to "
        "2024-03-01T06:00:00Z, 25% of the range; about 3 min left.",
        "Progress of callvolume: 7 rows read with 6 requests (1 refused with 429); windows read up to "
        "2024-03-01T06:00:00Z, 25% of the range; about 60 min left.",
    ]


def test_progress_of_a_range_up_to_now_reads_at_most_100_percent_once_its_windows_reach_now(
    clock: _Clock, progress: Callable[[], List[str]]
) -> None:
    authenticator = _authenticator(config(end_date=None))
    # The last window ends a little after the authenticator was built, when the range up to now was measured.
    window_end = format_utc(pendulum.now("UTC").add(hours=1))

    clock.now = T0 + 60
    answer = _page([record(1)], end=window_end)
    authenticator.update_from_response(answer.request, answer)

    assert progress() == [
        f"Progress of callvolume: 1 rows read with 1 requests (0 refused with 429); windows read up to {window_end}, "
        "100% of the range; about 0 min left."
    ]


@pytest.mark.parametrize(
    "overrides, window_end",
    [({"end_date": START}, END), ({}, START)],
    ids=["a-range-of-no-length", "a-window-ending-at-the-start"],
)
def test_progress_without_a_share_of_the_range_to_measure_says_only_the_window_reached(
    clock: _Clock, progress: Callable[[], List[str]], overrides: Mapping[str, Any], window_end: str
) -> None:
    # start_date = end_date passes the manifest's spec: only the package's own config check refuses it.
    authenticator = _authenticator(config(**overrides))

    clock.now = T0 + 60
    answer = _page([record(1)], end=window_end)
    authenticator.update_from_response(answer.request, answer)

    assert progress() == [f"Progress of callvolume: 1 rows read with 1 requests (0 refused with 429); windows read up to {window_end}."]


def test_progress_of_agent_activity_reads_its_window_from_the_query(clock: _Clock, progress: Callable[[], List[str]]) -> None:
    authenticator = _authenticator()
    events = {"AgentUpdates": [{"AgentId": "a-1", "EventTime": "3/1/2024 9:00:00"}, {"AgentId": "a-2", "EventTime": "3/1/2024 9:00:01"}]}

    clock.now = T0 + 60
    answer = _answer(body=events, url=f"{ACCOUNT_URL}/agentactivity", query={"fromTimeStamp": START, "toTimeStamp": "2024-03-01T12:00:00Z"})
    authenticator.update_from_response(answer.request, answer)

    assert progress() == [
        "Progress of agentactivity: 2 rows read with 1 requests (0 refused with 429); windows read up to "
        "2024-03-01T12:00:00Z, 50% of the range; about 1 min left."
    ]


# --- Back-off -----------------------------------------------------------------------------------------


def _backoff() -> components.RateLimitAwareBackoff:
    return _component(CustomBackoffStrategy, DEFINITIONS["error_handler"]["backoff_strategies"][0])


# Regression, Retry-After 0 (or an HTTP date past, rewritten to 0): the CDK took the wait of 0 for none given and
# backed off on its own, doubling without a cap.
@pytest.mark.parametrize(
    "retry_after, wait",
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "600"}, 600.0), ({}, 1.0), ({"Retry-After": "0"}, 1.0)],
)
def test_a_429_waits_as_retry_after_says_or_a_moment_without_it(retry_after: Mapping[str, str], wait: float) -> None:
    # Without Retry-After the request budget, which a 429 fills, holds the retry until its window frees up.
    assert _backoff().backoff_time(_answer(429, headers=retry_after), 1) == wait


def test_a_retry_after_past_ten_minutes_stops_the_sync_with_a_transient_error() -> None:
    with pytest.raises(AirbyteTracedException) as refused:
        _backoff().backoff_time(_answer(429, headers={"Retry-After": "601"}), 1)

    trace = _trace(refused.value)
    assert trace.message == trace.internal_message == (
        "Kore.ai asked to wait 601 s before retrying (Retry-After), more than the 600 s the connector waits; run the sync again later."
    )
    assert trace.failure_type == FailureType.transient_error


@pytest.mark.parametrize(
    "cause",
    [_answer(503, headers={"Retry-After": "7"}), requests.exceptions.ConnectionError("Connection aborted.")],
    ids=["503-with-retry-after", "dropped-connection"],
)
def test_anything_but_a_429_backs_off_2_4_8_up_to_256_s(cause: Any) -> None:
    backoff = _backoff()

    assert [backoff.backoff_time(cause, attempt) for attempt in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 256, 256]


# --- Errors -------------------------------------------------------------------------------------------

HOST_HINT = "check `host`: it should be the Kore.ai environment, e.g. platform.kore.ai"


def _error_handler() -> components.CallVolumeErrorHandler:
    return _component(CustomErrorHandler, DEFINITIONS["error_handler"])


@pytest.mark.parametrize(
    "exception, message",
    [
        (
            requests.exceptions.ConnectionError("NameResolutionError: Failed to resolve 'platfrom.kore.ai'"),
            f"The host name could not be resolved; {HOST_HINT}.",
        ),
        (requests.exceptions.ConnectionError("[Errno -2] Name or service not known"), f"The host name could not be resolved; {HOST_HINT}."),
        (requests.exceptions.ConnectionError("[Errno 11001] getaddrinfo failed"), f"The host name could not be resolved; {HOST_HINT}."),
        (
            requests.exceptions.SSLError("certificate verify failed: self-signed certificate"),
            f"The TLS connection to the host failed (its certificate could not be verified); {HOST_HINT}.",
        ),
    ],
    ids=["name-resolution-error", "name-or-service-not-known", "getaddrinfo", "tls"],
)
def test_a_host_that_cannot_be_resolved_or_verified_fails_at_once_naming_host(exception: Exception, message: str) -> None:
    resolution = _error_handler().interpret_response(exception)

    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, FailureType.config_error)
    assert resolution.error_message == message


@pytest.mark.parametrize(
    "exception, message",
    [
        (
            requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))"),
            "The connection to Kore.ai failed or dropped mid-request; retried until the retries ran out.",
        ),
        (requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)"), "Kore.ai did not answer in time; retried until the retries ran out."),
    ],
    ids=["dropped", "timeout"],
)
def test_a_dropped_connection_or_a_timeout_is_retried_even_before_kore_has_answered(exception: Exception, message: str) -> None:
    resolution = _error_handler().interpret_response(exception)

    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.RETRY, FailureType.transient_error)
    assert resolution.error_message == message


@pytest.mark.parametrize(
    "answer, name",
    [
        (_answer(200, '{"hasMore": false, "CallVolumeUp'), "callvolume"),
        (_answer(200, {"agents": []}, url=f"{ACCOUNT_URL}/agents", query={"offset": "0"}), "agents"),
        # Rows that are no JSON object: the CDK failed on them with a bare error, or skipped them without a word.
        (_answer(200, {"hasMore": False, "CallVolumeUpdate": [record(1), 7]}), "callvolume"),
        (_answer(200, [{"agentId": "a-1"}, "a-2"], url=f"{ACCOUNT_URL}/agents", query={"offset": "0"}), "agents"),
        (_answer(200, {"AgentUpdates": [None]}, url=f"{ACCOUNT_URL}/agentactivity", query={"fromTimeStamp": START}), "agentactivity"),
    ],
    ids=["cut-short", "not-a-bare-array", "call-volume-row-not-an-object", "agent-not-an-object", "event-not-an-object"],
)
def test_a_200_that_is_not_its_endpoints_json_is_retried_naming_the_endpoint(answer: requests.Response, name: str) -> None:
    resolution = _error_handler().interpret_response(answer)

    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.RETRY, FailureType.transient_error)
    assert resolution.error_message == (
        f"Kore.ai answered 200 with a body that is not complete {name} JSON (cut short, an HTML error page, or rows "
        "that are not JSON objects); retried until the retries ran out."
    )


@pytest.mark.parametrize("status", [201, 202, 204, 206, 300, 304, 399])
def test_any_answer_the_cdk_takes_for_a_success_that_is_not_its_endpoints_json_is_retried_like_a_200(status: int) -> None:
    # Regression: only a 200 was vetted, so a 204 reached the extractor and the planner as a success.
    resolution = _error_handler().interpret_response(_answer(status, ""))

    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.RETRY, FailureType.transient_error)
    assert resolution.error_message.startswith(f"Kore.ai answered {status} with a body that is not complete callvolume JSON")


# --- Paging -------------------------------------------------------------------------------------------


def _paginator() -> components.HasMoreOffsetPagination:
    return _component(CustomPaginationStrategy, DEFINITIONS["call_volume_paginator"]["pagination_strategy"])


def _next(paginator: components.HasMoreOffsetPagination, answer: requests.Response, token: Any) -> Any:
    return paginator.next_page_token(answer, len(parsed_page(answer)["CallVolumeUpdate"]), None, token)


def _skips(answers: Iterable[requests.Response]) -> List[Optional[int]]:
    """The `skip` of the request each answer leads to (None: the window is done), through one paginator."""
    paginator, token, skips = _paginator(), None, []
    for answer in answers:
        token = _next(paginator, answer, token)
        skips.append(None if token is None else token["skip"])
    return skips


@pytest.mark.parametrize(
    "before",
    [[], [_page([record(1)], hasMore=True, totalCount=5), _page([record(2)], hasMore=True, totalCount=6)]],
    ids=["first-read", "after-a-re-read"],
)
def test_a_window_without_total_count_fails_on_the_1000th_page_that_still_says_has_more(before: List[requests.Response]) -> None:
    # New rows on every page and hasMore forever: only the count of pages bounds the window, counted from its (re)start.
    served: List[int] = []

    def endless() -> Iterator[requests.Response]:
        yield from before
        for index in range(100, 2000):
            served.append(index)
            yield _page([record(index)], hasMore=True)

    with pytest.raises(components.UntrustworthyAnswerError) as refused:
        _skips(endless())

    assert len(served) == 1000
    assert _trace(refused.value).message == (
        f"Kore.ai is not paging the window {START} to {END}: hasMore is still true after 1000 pages, and it sends no "
        "totalCount to bound them. The sync stops rather than request the same rows forever."
    )


def test_without_has_more_the_page_that_reaches_total_count_ends_the_window() -> None:
    assert _skips([_page([record(1), record(2), record(3)], totalCount=5), _page([record(4), record(5)], totalCount=5)]) == [3, None]


@pytest.mark.parametrize(
    "fields, skips",
    [({"hasMore": "false", "totalCount": 3}, [None]), ({"totalCount": "5"}, [3]), ({"hasMore": 1, "totalCount": True}, [3])],
    ids=["hasMore-a-string", "totalCount-a-string", "hasMore-a-number-totalCount-a-boolean"],
)
def test_has_more_and_total_count_of_the_wrong_type_are_ignored(fields: Mapping[str, Any], skips: List[Optional[int]]) -> None:
    # Ignored, they leave the fallbacks: totalCount, else a page that is not empty means more.
    assert _skips([_page([record(1), record(2), record(3)], **fields)]) == skips


def test_a_total_count_that_changes_across_a_page_without_one_still_re_reads_the_window() -> None:
    pages = [
        _page([record(1), record(2), record(3)], hasMore=True, totalCount=9),
        _page([record(4), record(5), record(6)], hasMore=True),
        _page([record(7), record(8), record(9)], hasMore=True, totalCount=10),
    ]

    assert _skips(pages) == [3, 6, 0]


# --- Answers and the window check ---------------------------------------------------------------------


def test_the_window_asked_for_is_read_from_the_json_body_or_else_from_the_query() -> None:
    get = _answer(url=f"{ACCOUNT_URL}/agentactivity?fromTimeStamp=2024-02-01T00:00:00Z", query={"fromTimeStamp": START, "toTimeStamp": END})

    assert requested_window(_answer()) == window_body()
    # A repeated parameter counts as a server would read it: the last one.
    assert requested_window(get) == {"fromTimeStamp": START, "toTimeStamp": END}


@pytest.mark.parametrize("body", ["not json", "[1, 2]"])
def test_a_request_body_that_is_not_a_json_object_asks_for_no_window(body: str) -> None:
    answer = _answer()
    answer.request.body = body.encode()

    assert requested_window(answer) == {}


def test_an_answer_without_its_request_asks_for_no_window() -> None:
    assert requested_window(requests.Response()) == {}


def test_an_answer_is_parsed_once_for_every_component_that_reads_it() -> None:
    answer = _page([record(1)], hasMore=False)

    assert parsed_page(answer) == {"CallVolumeUpdate": [record(1)], "hasMore": False}
    assert parsed_body(answer) is parsed_page(answer)


@pytest.mark.parametrize(
    "answer",
    [
        _page({"_id": "x"}),
        _answer(body=[{"agentId": "a-1"}], url=f"{ACCOUNT_URL}/agents", query={"offset": "0"}),
        _answer(body={"AgentUpdates": []}, url=f"{ACCOUNT_URL}/agentactivity", query={"fromTimeStamp": START}),
        _answer(body="<html></html>"),
    ],
    ids=["rows-not-a-list", "agents-array", "agent-activity", "not-json"],
)
def test_only_a_call_volume_answer_of_the_right_shape_is_a_page(answer: requests.Response) -> None:
    assert parsed_page(answer) is None


def test_rows_from_the_windows_start_to_one_interval_past_its_end_are_in_it_with_or_without_milliseconds(http_mocker: HttpMocker) -> None:
    # Without milliseconds a row cannot be compared as text with the window's edges: its time is parsed.
    ends = ["2024-03-01T00:00:00Z", "2024-03-01T10:00:00Z", "2024-03-02T00:15:00Z", "2024-03-02T00:15:00.000Z"]
    rows = [record(index, end=end) for index, end in enumerate(ends)]
    http_mocker.post(window_request(skip=0), page(rows, has_more=False))

    output = _read(config())

    assert [message.record.data["_id"] for message in output.records] == [row["_id"] for row in rows]
    assert not output.errors


@pytest.mark.parametrize(
    "interval_end, said",
    [
        ("2024-02-29T23:45:00.000Z", "2024-02-29T23:45:00Z"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z"),
        ("2024-03-02T00:15:01.000Z", "2024-03-02T00:15:01Z"),
    ],
    ids=["before-the-start", "a-second-before-the-start", "a-second-past-the-slack"],
)
def test_a_row_outside_its_window_fails_the_window_as_a_system_error_after_the_rows_before(
    http_mocker: HttpMocker, interval_end: str, said: str
) -> None:
    outside = record(2, end=interval_end)
    http_mocker.post(window_request(skip=0), page([record(1), outside, record(3)], has_more=False))

    output = _read(config())

    assert [message.record.data["_id"] for message in output.records] == [record(1)["_id"]]
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.system_error and error.internal_message == error.message
    assert error.message.startswith(
        f"Kore.ai sent the callvolume record '{outside['_id']}' of {said}, outside the window {START} to {END} that was asked for."
    )


# --- Config and state ---------------------------------------------------------------------------------


def test_the_config_is_trimmed_with_a_scheme_no_trailing_slash_and_a_start_on_the_quarter_hour() -> None:
    configuration = {
        "host": " de-platform.kore.ai/ ",
        "account_id": " acc-1 ",
        "credentials": {"auth_type": "client_credentials", "client_id": " 0123 ", "client_secret": "secret "},
        "start_date": "2024-03-01T09:07:30Z",
        "page_size": 3,
    }

    NormalizeConfig().transform(configuration)

    assert configuration == {
        "host": "https://de-platform.kore.ai",
        "account_id": "acc-1",
        "credentials": {"auth_type": "client_credentials", "client_id": "0123", "client_secret": "secret"},
        "start_date": "2024-03-01T09:00:00Z",
        "page_size": 3,
    }


@pytest.mark.parametrize(
    "host, normalised",
    [
        (None, "https://platform.kore.ai"),
        ("", "https://platform.kore.ai"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://de-platform.kore.ai", "https://de-platform.kore.ai"),
        # Only slashes are trimmed: a name may end in any letter, upper case included.
        ("WFM.EXAMPLE.LUX/", "https://WFM.EXAMPLE.LUX"),
    ],
)
def test_a_host_left_out_is_kore_ais_and_one_given_keeps_its_scheme(host: Optional[str], normalised: str) -> None:
    configuration = {"start_date": START, **({} if host is None else {"host": host})}

    NormalizeConfig().transform(configuration)

    assert configuration["host"] == normalised


@pytest.mark.parametrize("start_date", [None, ""], ids=["left-out", "empty"])
def test_without_start_date_the_manifest_alone_refuses_the_config_as_a_config_error(start_date: Optional[str]) -> None:
    configuration = {"host": "platform.kore.ai", **({} if start_date is None else {"start_date": start_date})}

    with pytest.raises(AirbyteTracedException) as refused:
        NormalizeConfig().transform(configuration)

    trace = _trace(refused.value)
    assert trace.failure_type == FailureType.config_error
    assert trace.message == trace.internal_message == (
        "`start_date` is required when this manifest runs without the source_callvolume package, which alone can "
        "search for the account's first interval: set `start_date`, e.g. 2024-01-01T00:00:00Z."
    )


@pytest.mark.parametrize(
    "state, migrates",
    [
        ({"intervalEndTimeStamp": "2024-03-01T12:07:00Z"}, True),
        ({"intervalEndTimeStamp": "2024-03-01T12:00:30.000Z"}, True),
        ({"intervalEndTimeStamp": "2024-03-01T12:00:00Z"}, False),
        ({"intervalEndTimeStamp": "2024-03-01T12:00:00.000Z"}, False),
        ({"intervalEndTimeStamp": "soon"}, False),
        ({}, False),
        (None, False),
    ],
    ids=["off-grid", "off-grid-by-seconds", "on-grid", "on-grid-with-milliseconds", "not-a-time", "no-cursor", "no-state"],
)
def test_only_a_state_cursor_off_the_quarter_hour_is_migrated(state: Any, migrates: bool) -> None:
    assert CursorOnTheGrid().should_migrate(state) is migrates


def test_a_migrated_state_keeps_its_other_fields_and_puts_its_cursor_on_the_quarter_hour_before() -> None:
    assert CursorOnTheGrid().migrate({"intervalEndTimeStamp": "2024-03-01T12:14:59.999Z", "other": 1}) == {
        "intervalEndTimeStamp": "2024-03-01T12:00:00Z",
        "other": 1,
    }
