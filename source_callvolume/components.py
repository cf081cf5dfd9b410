"""Components for what the declarative manifest cannot say about Kore.ai's call-volume API.

Each class says why the CDK's own component falls short; BEHAVIOR.md explains the API quirks behind them.

This file is self-contained (it imports only the CDK, its dependencies and pendulum), so that the same
manifest and components run under the CDK's generic `source-declarative-manifest` runner, which loads a
single components file (`--components-path`, or injected through the config). For the same reason it does
not use `from __future__ import annotations`: the runner executes it as a module that dataclasses cannot
look up while its classes are built.

It also holds the project's one time module (the first section): every timestamp the connector parses,
formats or steps through goes through these few functions, built on pendulum.
"""

import logging
import socket
import threading
import time
import uuid
import warnings
import weakref
from dataclasses import InitVar, dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import jwt
import orjson
import pendulum
import requests
from jwt.warnings import InsecureKeyLengthWarning

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.auth.declarative_authenticator import DeclarativeAuthenticator
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.declarative.migrations.state_migration import StateMigration
from airbyte_cdk.sources.declarative.requesters.error_handlers import DefaultErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config, Record
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

# --- Time ---------------------------------------------------------------------------------------------

#: How the connector writes a UTC time: config dates, state cursors, request window edges.
TIMESTAMP_FORMAT = "YYYY-MM-DD[T]HH:mm:ss[Z]"
#: How the API writes one: `2024-06-01T09:45:00.000Z`.
API_TIMESTAMP_FORMAT = "YYYY-MM-DD[T]HH:mm:ss.SSS[Z]"
INTERVAL_MINUTES = 15
#: Where a read without `start_date` and without state may begin when nothing narrower is known.
EARLIEST = "1970-01-01T00:00:00Z"


def parse_utc(text: Any) -> Optional[pendulum.DateTime]:
    """A UTC time written `YYYY-MM-DDTHH:MM:SSZ`, with or without milliseconds; None for anything else."""
    if not isinstance(text, str):
        return None
    for timestamp_format in (TIMESTAMP_FORMAT, API_TIMESTAMP_FORMAT):
        try:
            return pendulum.from_format(text, timestamp_format, tz="UTC")
        except ValueError:
            continue
    return None


def format_utc(moment: pendulum.DateTime) -> str:
    return moment.in_timezone("UTC").format(TIMESTAMP_FORMAT)


def format_api(moment: pendulum.DateTime) -> str:
    return moment.in_timezone("UTC").format(API_TIMESTAMP_FORMAT)


def floor_to_interval(moment: pendulum.DateTime) -> pendulum.DateTime:
    """The quarter hour at or before `moment`: the grid every interval, and so every window edge, sits on."""
    utc = moment.in_timezone("UTC")
    return utc.set(minute=utc.minute - utc.minute % INTERVAL_MINUTES, second=0, microsecond=0)


def now_utc() -> pendulum.DateTime:
    return pendulum.now("UTC")


#: How the agent-activity API writes `EventTime`: `10/20/2020 2:13:12` (hour not zero-padded; taken as UTC).
EVENT_TIME_FORMAT = "M/D/YYYY H:mm:ss"


def parse_event_time(text: Any) -> Optional[pendulum.DateTime]:
    """An agent-activity `EventTime`, read as UTC (Kore.ai does not say; BEHAVIOR.md); None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return pendulum.from_format(text.strip(), EVENT_TIME_FORMAT, tz="UTC")
    except ValueError:
        return None


def seconds_until_http_date(text: str) -> Optional[int]:
    """Seconds from now until an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`), at least 0; None if it is not one."""
    try:
        moment = pendulum.from_format(text.strip(), "ddd, DD MMM YYYY HH:mm:ss z", tz="UTC")
    except ValueError:
        return None
    return max(0, int((moment - now_utc()).total_seconds() + 0.999))


# --- Pages --------------------------------------------------------------------------------------------

RECORDS_FIELD = "CallVolumeUpdate"
HAS_MORE_FIELD = "hasMore"
TOTAL_COUNT_FIELD = "totalCount"
CURSOR_FIELD = "intervalEndTimeStamp"
AUTH_HEADER = "auth"
#: Where each endpoint's answer keeps its records: a field of a JSON object, or None for a bare JSON array.
RECORDS_BY_ENDPOINT: Dict[str, Optional[str]] = {
    "callvolume": RECORDS_FIELD,
    "agentactivity": "AgentUpdates",
    "queues": None,
    "agents": None,
}

_PAYLOAD_ATTRIBUTE = "_callvolume_payload"
_NOT_PARSED = object()


def is_count(value: Any) -> bool:
    """Whether an answer's field is a whole number (JSON's `true` is an int to Python, and is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def endpoint(response: requests.Response) -> str:
    """The WFM endpoint a response answers: the last segment of its request's path (`callvolume`, `agents` ...)."""
    url = response.request.url if response.request is not None else response.url
    return urlsplit(url or "").path.rstrip("/").rsplit("/", 1)[-1]


def parsed_body(response: requests.Response) -> Optional[Any]:
    """The answer's JSON when it has its endpoint's shape, its records all JSON objects, else None; parsed once
    and kept on the response.

    The error handler, the extractor, the paginators and the guard all read the same body: one parse serves them.
    A record that is not an object is no row of any WFM API: the error handler retries such an answer like one
    cut short, and the components past it see objects only.
    """
    payload = getattr(response, _PAYLOAD_ATTRIBUTE, _NOT_PARSED)
    if payload is _NOT_PARSED:
        try:
            payload = orjson.loads(response.content)
        except (orjson.JSONDecodeError, requests.RequestException):
            payload = None
        field_name = RECORDS_BY_ENDPOINT.get(endpoint(response), RECORDS_FIELD)
        records = payload if field_name is None else payload.get(field_name) if isinstance(payload, dict) else None
        if not (isinstance(records, list) and all(isinstance(record, dict) for record in records)):
            payload = None
        setattr(response, _PAYLOAD_ATTRIBUTE, payload)
    return payload


def records_of(response: requests.Response) -> Optional[List[Any]]:
    """The records of an answer of the right shape, else None."""
    body = parsed_body(response)
    if body is None:
        return None
    field_name = RECORDS_BY_ENDPOINT.get(endpoint(response), RECORDS_FIELD)
    return body if field_name is None else body[field_name]


def parsed_page(response: requests.Response) -> Optional[Mapping[str, Any]]:
    """A call-volume page (hasMore, totalCount and its rows), else None."""
    body = parsed_body(response)
    return body if isinstance(body, dict) and isinstance(body.get(RECORDS_FIELD), list) else None


def requested_window(response: requests.Response) -> Mapping[str, Any]:
    """What the request that `response` answers asked for: its JSON body (call volume: window edges, `skip`,
    `limit`) or its query parameters (agent activity: window edges)."""
    request = response.request
    if request is None:
        return {}
    if request.body:
        try:
            parsed = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}
    return {name: values[-1] for name, values in parse_qs(urlsplit(request.url or "").query).items()}


def describe_window(response: requests.Response) -> str:
    window = requested_window(response)
    return f"the window {window.get('fromTimeStamp', 'from the first record')} to {window.get('toTimeStamp', 'now')}"


class UntrustworthyAnswerError(AirbyteTracedException):
    """Kore.ai answered in a way that would lose or invent rows if the connector went on believing it."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, internal_message=message, failure_type=FailureType.system_error)


# --- Authentication and the guard on every request ----------------------------------------------------

# Kore.ai accepts tokens that live at most one hour; a short life limits what a leaked token could do.
TOKEN_LIFETIME_SECONDS = 600
#: However slowly the bytes of one answer arrive, it is cut after this long and retried like a timeout.
REQUEST_DEADLINE_SECONDS = 120
#: Once no request has succeeded for this long, through every retry, a fault is taken as permanent.
GIVE_UP_AFTER_SECONDS = 900
#: How often a sync says how far it got.
PROGRESS_EVERY_SECONDS = 60
#: Set on a redirect the connector refused to follow: where the server wanted the token to go.
REFUSED_REDIRECT_ATTRIBUTE = "callvolume_refused_redirect"

# The secret's length is Kore.ai's choice, not the user's; PyJWT's warning about it would also be printed as a
# bare line on stdout, breaking the Airbyte protocol.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def sign_token(app_id: str, secret: str, issued_at: Optional[int] = None) -> str:
    """An HS256 token for the JWT app, with a `jti` never used before, as Kore.ai's JTI enforcement asks."""
    issued_at = int(time.time()) if issued_at is None else issued_at
    claims = {"appId": app_id, "iat": issued_at, "exp": issued_at + TOKEN_LIFETIME_SECONDS, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256")


class PermanentFaultError(AirbyteTracedException):
    """No request has succeeded for 15 minutes: the sync stops rather than start window after window."""


@dataclass
class KoreAuthenticator(DeclarativeAuthenticator):
    """Puts the token in Kore.ai's `auth` header, and guards every attempt of every request.

    Why not `JwtAuthenticator`/`ApiKeyAuthenticator`: the JWT one turns a Client ID that looks numeric ("0123")
    into a number, which Kore.ai refuses, and neither can guard a request. An authenticator is the only
    component the CDK calls before every attempt (first tries and retries alike) and, through its
    `update_from_response` hook, after every answer; so the guard lives here:

    - The token goes to the configured host only: a redirect is never followed (requests would resend the
      custom `auth` header to any host a 3xx names). The error handler turns the refused redirect into a
      config error naming where it pointed.
    - An answer has a total deadline, however slowly its bytes arrive (each byte resets the read timeout):
      past it the connection is shut and the attempt fails like a timeout, to be retried.
    - A fault that never clears ends the sync: once nothing has succeeded for 15 minutes, through every retry
      and every wait for the rate limit, every further attempt fails at once, so no new window starts and spends
      its own retries; the message names the account's budget when the refusals were 429s.
    - It says, at most once a minute, how far the sync got (a budget-bound backfill takes hours).

    With `client_id` and `client_secret` it signs a fresh token (unique `jti`) per attempt; with `token_value` it
    sends the pasted one as is.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    client_id: Optional[Union[InterpolatedString, str]] = None
    client_secret: Optional[Union[InterpolatedString, str]] = None
    token_value: Optional[Union[InterpolatedString, str]] = None

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        # Evaluated once: the config does not change during a run.
        self._app_id = self._evaluate(self.client_id, parameters)
        self._secret = self._evaluate(self.client_secret, parameters)
        self._pasted = self._evaluate(self.token_value, parameters)
        self._lock = threading.Lock()
        # Set by the stream's first attempt: streams run one after another, and the clock of one that starts
        # after a long one must not have run meanwhile.
        self._last_success: Optional[float] = None
        self._last_refusal_was_rate_limit = False
        self._progress = _Progress(self.config)

    def _evaluate(self, value: Optional[Union[InterpolatedString, str]], parameters: Mapping[str, Any]) -> Optional[str]:
        if value is None:
            return None
        return InterpolatedString.create(value, parameters=parameters).eval(self.config, valid_types=(str,))  # type: ignore[no-any-return]

    @property
    def auth_header(self) -> str:
        return AUTH_HEADER

    @property
    def token(self) -> str:
        if self._pasted is not None:
            return self._pasted
        return sign_token(self._app_id or "", self._secret or "")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            now = time.monotonic()
            if self._last_success is None:
                self._last_success = now
            silent_for = now - self._last_success
            rate_limited = self._last_refusal_was_rate_limit
        if silent_for > GIVE_UP_AFTER_SECONDS:
            cause = (
                "every answer was a 429: the account's budget of 60 requests a minute is spent, and other clients of the "
                "account, such as the contact centre's WFM tool, may be using it"
                if rate_limited
                else "through every retry"
            )
            message = (
                f"Kore.ai has answered no request successfully for {silent_for / 60:.0f} minutes ({cause}): the sync stops "
                "here rather than start more windows. The state emitted so far covers only rows read; run the sync "
                "again later."
            )
            raise PermanentFaultError(message=message, internal_message=message, failure_type=FailureType.transient_error)
        # The same prepared request comes back for each retry: its hooks are registered once, its deadline anew.
        if _check_answer not in request.hooks["response"]:
            request.register_hook("response", _check_answer)
            request.register_hook("response", _DEADLINES.watch)
        _DEADLINES.start(request)
        return super().__call__(request)

    def update_from_response(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        records = records_of(response) if response.status_code == 200 else None
        with self._lock:
            if records is not None or response.status_code in (400, 401, 403, 404):
                # An answer the server meant, a page or a refusal: the server is there and talking.
                self._last_success = time.monotonic()
            self._last_refusal_was_rate_limit = response.status_code == 429
        self._progress.count(response, records)


class _Progress:
    """Says, at most once a minute, how far a sync got: rows, requests, 429s, the window reached, the time left."""

    def __init__(self, config: Config) -> None:
        self._lock = threading.Lock()
        self._started = self._last_said = time.monotonic()
        self._requests = self._rows = self._refused = 0
        self._reached: Optional[pendulum.DateTime] = None
        self._first = parse_utc(config.get("start_date"))
        self._last = parse_utc(config.get("end_date")) or now_utc()

    def count(self, response: requests.Response, records: Optional[List[Any]]) -> None:
        with self._lock:
            self._requests += 1
            self._refused += response.status_code == 429
            if records is not None:
                self._rows += len(records)
                window_end = parse_utc(requested_window(response).get("toTimeStamp"))
                if window_end is not None and (self._reached is None or window_end > self._reached):
                    self._reached = window_end
            now = time.monotonic()
            if now - self._last_said < PROGRESS_EVERY_SECONDS:
                return
            self._last_said = now
            message = f"Progress of {endpoint(response)}: {self._rows} rows read with {self._requests} requests ({self._refused} refused with 429)"
            if self._reached is not None:
                message += f"; windows read up to {format_utc(self._reached)}"
                if self._first is not None and self._last > self._first:
                    done = min(1.0, (self._reached - self._first).total_seconds() / (self._last - self._first).total_seconds())
                    if done > 0:
                        message += f", {done:.0%} of the range; about {(now - self._started) * (1 - done) / done / 60:.0f} min left"
        logging.getLogger("airbyte").info(message + ".")


def _check_answer(response: requests.Response, **_: Any) -> requests.Response:
    """Runs on every answer before requests acts on it: refuses a redirect, and writes a `Retry-After` given as
    an HTTP date as seconds, the one form the back-off and the CDK's request budget read."""
    if response.is_redirect:
        setattr(response, REFUSED_REDIRECT_ATTRIBUTE, response.headers.get("Location", ""))
        del response.headers["Location"]  # without it, requests does not follow the redirect
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None and not retry_after.strip().isdigit():
        seconds = seconds_until_http_date(retry_after)
        if seconds is None:
            del response.headers["Retry-After"]  # unreadable: as if Kore.ai had sent none
        else:
            response.headers["Retry-After"] = str(seconds)
    return response


class _Deadlines:
    """Shuts the connection of any answer still arriving `REQUEST_DEADLINE_SECONDS` after its attempt began.

    A response hook runs once the headers are in and before requests reads the body; from then on one watcher
    thread checks the answer once a second until its body is read and its connection released.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: "weakref.WeakKeyDictionary[requests.PreparedRequest, float]" = weakref.WeakKeyDictionary()
        self._watched: List[Any] = []
        self._watcher: Optional[threading.Thread] = None

    def start(self, request: requests.PreparedRequest) -> None:
        with self._lock:
            self._started[request] = time.monotonic()

    def watch(self, response: requests.Response, **_: Any) -> requests.Response:
        with self._lock:
            started = self._started.get(response.request, time.monotonic())
            self._watched.append((started + REQUEST_DEADLINE_SECONDS, weakref.ref(response)))
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._run, name="callvolume-deadlines", daemon=True)
                self._watcher.start()
        return response

    def _run(self) -> None:
        while True:
            time.sleep(1)
            now = time.monotonic()
            with self._lock:
                still_open = []
                for deadline, reference in self._watched:
                    response = reference()
                    connection = getattr(getattr(response, "raw", None), "connection", None)
                    if connection is None:
                        continue  # read and released, or gone
                    if now < deadline:
                        still_open.append((deadline, reference))
                    else:
                        _shut(connection)
                self._watched = still_open


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_DEADLINES = _Deadlines()


# --- Paging -------------------------------------------------------------------------------------------


@dataclass
class _PagingOnFromTheFirstAnswer(PaginationStrategy):
    """What the three paginations share: no token before the first answer, and no page size of their own.

    The requests ask for the config's `page_size` through the manifest's request options; the CDK would only
    put a strategy's page size into a request through a `page_size_option`, which no paginator here has.

    The ids a token remembers grow in place: the CDK hands each token back once, for the page after the one it
    was made from, and a copy a page made a window's paging cost grow with the square of its pages (1.6 s of
    copying for a window of 298 pages of 1,000 rows, 0.04 s in place).
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    @property
    def initial_token(self) -> Optional[Any]:
        return None

    def get_page_size(self) -> Optional[int]:
        return None


@dataclass
class HasMoreOffsetPagination(_PagingOnFromTheFirstAnswer):
    """Offset paging that follows `hasMore`, checks every answer before it moves the offset, and re-reads a
    window whose rows moved while it was paged.

    Why not `OffsetIncrement`: it stops on the first page shorter than `limit` and ignores `hasMore`, but
    Kore.ai may cap its pages below the `limit` asked for while `hasMore` is still true. Here `skip` grows by
    the rows actually received. Whether more follows is `hasMore`; without it, `skip + rows < totalCount`;
    with neither, a page that is not empty. A short page alone never ends a window.

    Nothing the server says can make a window page forever: a page whose rows were all received already in
    this window (an ignored `skip`), `hasMore: true` with an empty page or with `skip` at `totalCount`, or
    `hasMore: false` while `totalCount` says rows are missing, ends the window with an error naming it.

    Offsets shift when rows are inserted into or removed from a window between two page requests. Every page
    carries `totalCount`; when it differs from the first page's, the window is read again from `skip` 0 (rows
    read twice are dedup'd by the primary key), at most `MAX_WINDOW_RESTARTS` times.

    The token is derived only from the page just read and the previous token: one instance pages every window
    at once, so it keeps no state of its own.
    """

    MAX_WINDOW_RESTARTS = 5
    #: Without `totalCount` nothing bounds a window's pages; this does, far above any real window.
    MAX_PAGES_WITHOUT_TOTAL = 1000

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Optional[Record],
        last_page_token_value: Optional[Any] = None,
        page_size_override: Optional[int] = None,
        stream_slice: Any = None,
    ) -> Optional[Any]:
        page = parsed_page(response)
        if page is None:
            return None  # the extractor has already refused it
        token: Mapping[str, Any] = last_page_token_value or {}
        skip, first_total, restarts = token.get("skip", 0), token.get("total"), token.get("restarts", 0)
        seen: Set[Any] = token.get("seen", set())
        rows = page[RECORDS_FIELD]
        has_more = page.get(HAS_MORE_FIELD)
        has_more = has_more if isinstance(has_more, bool) else None
        total = page.get(TOTAL_COUNT_FIELD)
        total = total if is_count(total) else None
        window = describe_window(response)

        if first_total is not None and total is not None and total != first_total:
            if restarts >= self.MAX_WINDOW_RESTARTS:
                raise UntrustworthyAnswerError(
                    f"Rows kept being added or removed while {window} was paged (read again {restarts} times), so "
                    "rows could be skipped; the sync stops instead. Run it again; if it persists, lower `window_hours`."
                )
            return {"skip": 0, "total": None, "restarts": restarts + 1, "seen": set(), "pages": 0}

        received = skip + len(rows)
        more = has_more if has_more is not None else (received < total if total is not None else bool(rows))
        if not more:
            if has_more is False and total is not None and received < total:
                raise UntrustworthyAnswerError(
                    f"Kore.ai said hasMore=false after {received} rows of {window}, but its totalCount is {total}: "
                    "the missing rows cannot be read, so the sync stops rather than lose them."
                )
            return None
        problem = self._no_progress(rows, seen, received, total, token.get("pages", 0) + 1)
        if problem:
            raise UntrustworthyAnswerError(
                f"Kore.ai is not paging {window}: {problem} The sync stops rather than request the same rows forever."
            )
        seen.update(row.get("_id") for row in rows)
        return {
            "skip": received,
            "total": total if first_total is None else first_total,
            "restarts": restarts,
            "seen": seen,
            "pages": token.get("pages", 0) + 1,
        }

    def _no_progress(self, rows: List[Any], seen: Set[Any], received: int, total: Optional[int], pages: int) -> Optional[str]:
        if not rows:
            return "it says more rows follow but sent an empty page."
        if all(row.get("_id") in seen for row in rows):
            return f"the page at skip {received - len(rows)} holds only rows it had already sent (it ignores `skip`)."
        if total is not None and received >= total:
            return f"hasMore is still true at skip {received}, past its own totalCount of {total}."
        if total is None and pages >= self.MAX_PAGES_WITHOUT_TOTAL:
            return f"hasMore is still true after {pages} pages, and it sends no totalCount to bound them."
        return None


# --- Records ------------------------------------------------------------------------------------------


EVENT_TIME_UTC_FIELD = "EventTimeUtc"
#: How far past its window's end a record's time may lie: a call-volume interval that starts at the window's end
#: ends 15 minutes later (the "overlapping" filter); an agent event is a moment (the request adds one second).
_WINDOW_SLACK_MINUTES = {"callvolume": INTERVAL_MINUTES, "agentactivity": 1 / 60}


@dataclass
class WfmRecordExtractor(RecordExtractor):
    """Yields the records of any WFM answer from the body the error handler already parsed, once each record of a
    windowed endpoint (call volume, agent activity) is known to lie in the window that was asked for.

    Why not `DpathExtractor`: it decodes the body a second time and walks every leaf of the page to resolve a
    one-element path (15% of a sync's CPU), and its JSON decoder turns an unreadable body into an empty page,
    which would end pagination and lose rows silently.

    Why the window check: the CDK's cursor takes the newest cursor value it sees as the state, and nothing lets a
    record be emitted without moving it. One row from decades ahead would carry the state there, and every later
    sync would ask for nothing. A call-volume row may end anywhere from the window's start to one interval past
    its end (that covers every filter semantics, see BEHAVIOR.md), an agent event anywhere in the window; a record
    outside ends the window with an error, after the records before it. A record whose time cannot be read is
    emitted, and the CDK leaves the cursor where it was (it warns once).
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()
        # Per agent-activity window (its toTimeStamp): the latest second emitted, and the events of that second.
        self._boundaries: Dict[str, Tuple[str, Set["EventKey"]]] = {}

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        records = records_of(response)
        name = endpoint(response)
        if name == "agentactivity" and records is not None:
            records = self._not_yet_emitted(records, requested_window(response))
        if records is None:
            raise UntrustworthyAnswerError(
                f"Kore.ai sent an answer of {describe_window(response)} that is not {name} JSON, through every retry."
            )
        window = requested_window(response)
        start, end = parse_utc(window.get("fromTimeStamp")), parse_utc(window.get("toTimeStamp"))
        if name not in _WINDOW_SLACK_MINUTES or end is None:
            yield from records
            return
        latest = end.add(seconds=round(_WINDOW_SLACK_MINUTES[name] * 60))
        # The bounds in the API's fixed-width form, once a page: for a value of that form, comparing the text
        # compares the times, so most rows need no parsing.
        bounds = (format_api(start) if start is not None else "", format_api(latest))
        for index, record in enumerate(records):
            moment = self._time_of(name, record, bounds)
            if moment is not None and ((start is not None and moment < start) or moment > latest):
                yield from records[:index]
                raise UntrustworthyAnswerError(
                    f"Kore.ai sent the {name} record {_identify(record)} of {format_utc(moment)}, outside "
                    f"{describe_window(response)} that was asked for. The state would jump there and later syncs "
                    "would skip what lies between, so the sync stops; report the record to Kore.ai."
                )
        yield from records

    def _not_yet_emitted(self, events: List[Any], window: Mapping[str, Any]) -> List[Any]:
        """The events of an agent-activity answer but those of its first second already emitted for the window.

        Reading on from the latest event asks for that second again (ReadOnFromLastEvent), so its events come back;
        only they can: so only they are remembered, not the window's every event.
        """
        asked_from, window_end = window.get("fromTimeStamp", ""), window.get("toTimeStamp", "")
        with self._lock:
            boundary, emitted = self._boundaries.get(window_end, ("", set()))
        if boundary != asked_from:
            emitted = set()  # the window's first answer
        fresh = [event for event in events if _event_key(event) not in emitted]
        times = [(moment, event) for event in events for moment in [parse_event_time(event.get("EventTime"))] if moment]
        if times:
            latest = max(moment for moment, _ in times)
            at_latest = {_event_key(event) for moment, event in times if moment == latest}
            latest_text = format_utc(latest)
            with self._lock:
                self._boundaries[window_end] = (latest_text, at_latest | (emitted if latest_text == asked_from else set()))
        return fresh

    @staticmethod
    def _time_of(name: str, record: Mapping[str, Any], bounds: Tuple[str, str]) -> Optional[pendulum.DateTime]:
        """The record's time, or None when it cannot be read or (the fast path) plainly lies in the window."""
        if name == "agentactivity":
            return parse_event_time(record.get("EventTime"))
        interval_end = record.get(CURSOR_FIELD)
        if isinstance(interval_end, str) and len(interval_end) == len(bounds[1]) and bounds[0] <= interval_end <= bounds[1]:
            return None
        return parse_utc(interval_end)


def _identify(record: Mapping[str, Any]) -> str:
    if "_id" in record:
        return repr(record["_id"])
    return repr({key: record.get(key) for key in ("AgentId", "EventTime", "Activity", "ReasonCode")})


@dataclass
class NormalizeEventTime(RecordTransformation):
    """Adds `EventTimeUtc`, the agent event's `EventTime` as ISO 8601 UTC, which the cursor reads; the raw field stays.

    Why not `AddFields`: `EventTime` comes as `M/D/YYYY H:MM:SS` with a one-digit hour, which no interpolation
    macro parses. An unreadable `EventTime` gets no `EventTimeUtc`: the record is emitted and the cursor stays.
    """

    config: Config = field(default_factory=dict)
    parameters: InitVar[Mapping[str, Any]] = None

    def transform(
        self,
        record: Dict[str, Any],
        config: Optional[Config] = None,
        stream_state: Optional[Any] = None,
        stream_slice: Optional[Any] = None,
    ) -> None:
        moment = parse_event_time(record.get("EventTime"))
        if moment is not None:
            record[EVENT_TIME_UTC_FIELD] = format_utc(moment)


@dataclass
class OffsetUntilEmptyPage(_PagingOnFromTheFirstAnswer):
    """`offset`/`limit` paging that ends on an empty page, and fails on a page it has already received.

    Why not `OffsetIncrement`: it ends on the first page shorter than `limit`, but the agents API documents no
    `hasMore` and may cap `limit`; here `offset` grows by the rows received and only an empty page ends it. A
    server that ignores `offset` sends the same page again: that ends the stream with an error instead of
    paging forever, as does a number of pages no account could have.
    """

    id_field: str = "agentId"

    MAX_PAGES = 10000

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Optional[Record],
        last_page_token_value: Optional[Any] = None,
        page_size_override: Optional[int] = None,
        stream_slice: Any = None,
    ) -> Optional[Any]:
        rows = records_of(response)
        if not rows:
            return None
        token: Mapping[str, Any] = last_page_token_value or {}
        seen: Set[Any] = token.get("seen", set())
        ids = {row.get(self.id_field) for row in rows}
        offset, pages = token.get("offset", 0), token.get("pages", 0) + 1
        if ids <= seen:
            raise UntrustworthyAnswerError(
                f"Kore.ai sent the {endpoint(response)} page at offset {offset} again: it ignores `offset`, so the stream "
                "stops rather than request the same page forever."
            )
        if pages >= self.MAX_PAGES:
            raise UntrustworthyAnswerError(f"Kore.ai's {endpoint(response)} pages did not end after {pages} pages; the stream stops.")
        seen.update(ids)
        return {"offset": offset + len(rows), "seen": seen, "pages": pages}


EventKey = Tuple[Any, Any, Any, Any]


@dataclass
class ReadOnFromLastEvent(_PagingOnFromTheFirstAnswer):
    """Reads a window of agent activity on from its latest event until an answer brings nothing new.

    Why: the agent-activity API documents no paging, so an answer may be cut short at a size nobody told us.
    The connector assumes a cut keeps the earliest events (BEHAVIOR.md). After each answer it asks again from the
    latest event's time: inclusive, so the events of that second come back, and the extractor emits only those it
    had not. The window is done when an answer brings nothing new. That costs one confirming request per window,
    except for an answer smaller than the largest seen so far in the sync: a cap, if any, is above that size, so
    such an answer is whole. Two answers fail the sync rather than lose events: one, as large as any seen, of
    only events of the second it was asked from (more events share that second than an answer holds), and one
    not oldest first (the events a cut left out could not be found by reading on).

    The largest answer seen is the one thing kept across windows, under a lock.
    """

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._lock = threading.Lock()
        self._largest_answer = 0

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Optional[Record],
        last_page_token_value: Optional[Any] = None,
        page_size_override: Optional[int] = None,
        stream_slice: Any = None,
    ) -> Optional[Any]:
        events = records_of(response) or []
        with self._lock:
            largest_before, self._largest_answer = self._largest_answer, max(self._largest_answer, len(events))
        asked_from = parse_utc(requested_window(response).get("fromTimeStamp"))
        times = [moment for moment in (parse_event_time(event.get("EventTime")) for event in events) if moment]
        latest = max(times, default=None)
        if last_page_size == 0:  # nothing the window had not brought already
            if events and len(events) >= largest_before and latest is not None and latest == asked_from:
                raise UntrustworthyAnswerError(
                    f"Kore.ai's agent-activity answers hold at most {len(events)} events, and more than that share "
                    f"{format_utc(latest)}: they cannot all be read, so the sync stops rather than lose some."
                )
            return None
        if len(events) < largest_before or latest is None:
            return None  # smaller than an answer already seen: not cut short
        if times != sorted(times):
            raise UntrustworthyAnswerError(
                f"Kore.ai's agent-activity answer of {describe_window(response)} holds {len(events)} events, not oldest "
                "first: if it was cut short, the events it left out cannot be found by reading on, so the sync stops. "
                "Lower the window or report it to Kore.ai."
            )
        return {"from": format_utc(latest)}


def _event_key(event: Mapping[str, Any]) -> EventKey:
    return (event.get("AgentId"), event.get("EventTime"), event.get("Activity"), event.get("ReasonCode"))


# --- Back-off -----------------------------------------------------------------------------------------


@dataclass
class RateLimitAwareBackoff(BackoffStrategy):
    """How long to wait before a retry: as a 429's `Retry-After` says; after a 429 without one, a moment (the
    request budget then holds the request until the window frees up); after anything else 2, 4, 8 ... 256 s.

    Why not `WaitTimeFromHeader` then `ExponentialBackoffStrategy`: without the header a 429 would fall through to
    the exponential back-off, which reaches minutes, while Kore.ai's window is sixty seconds and the connector's
    own budget already knows when it frees up.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    MAX_RETRY_AFTER_SECONDS = 600
    AFTER_RATE_LIMIT_SECONDS = 1.0

    def backoff_time(self, response_or_exception: Optional[Union[requests.Response, requests.RequestException]], attempt_count: int) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 429:
            retry_after = response_or_exception.headers.get("Retry-After", "")
            if retry_after.strip().isdigit():
                asked = float(retry_after)
                if asked > self.MAX_RETRY_AFTER_SECONDS:
                    message = f"Kore.ai asked to wait {asked:.0f} s before retrying (Retry-After), more than the {self.MAX_RETRY_AFTER_SECONDS} s the connector waits; run the sync again later."
                    raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.transient_error)
                # "Retry now" is a moment too: the CDK takes a wait of 0 for none given and backs off on its own.
                return max(asked, self.AFTER_RATE_LIMIT_SECONDS)
            return self.AFTER_RATE_LIMIT_SECONDS
        return float(min(2 ** attempt_count, 256))


# --- Errors -------------------------------------------------------------------------------------------

_UNREACHABLE_HOST_HINT = "check `host`: it should be the Kore.ai environment, e.g. platform.kore.ai"
_NAME_RESOLUTION_MARKERS = ("NameResolutionError", "Name or service not known", "getaddrinfo failed")


@dataclass
class CallVolumeErrorHandler(DefaultErrorHandler):
    """The manifest's status mapping, plus what `response_filters` cannot match.

    - A 200 whose body is cut short or is not call-volume JSON is retried: the CDK's JSON decoder would read it
      as an empty page and end the window early, losing rows.
    - A redirect (which the authenticator refused to follow) is a config error naming where it pointed.
    - A host that cannot be resolved, or whose TLS certificate fails, is a configuration error that retrying
      cannot fix: it fails at once and names `host`. A refused connection is one too until Kore.ai has
      answered once; after that it is a blip, retried like a dropped connection or a timeout.
    Filters only ever see responses; these cases are exceptions, 200s or refused redirects, so they need code.
    """

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self._answered = threading.Event()

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            redirect = getattr(response_or_exception, REFUSED_REDIRECT_ATTRIBUTE, None)
            if redirect is not None:
                return _config_error(
                    f"Kore.ai answered {response_or_exception.status_code}, redirecting to {redirect or 'nowhere'}. "
                    "The connector follows no redirect, so the token goes only to the configured `host`: if that "
                    "host is the Kore.ai environment you mean and you trust it, set `host` to it."
                )
            # The CDK takes any status under 400 for a success (a redirect is refused above), so each is vetted:
            # a 204 or a 304 holds no page either.
            if response_or_exception.ok:
                if parsed_body(response_or_exception) is None:
                    return _transient(
                        f"Kore.ai answered {response_or_exception.status_code} with a body that is not complete "
                        f"{endpoint(response_or_exception)} JSON "
                        "(cut short, an HTML error page, or rows that are not JSON objects); retried until the retries ran out."
                    )
                self._answered.set()
        elif isinstance(response_or_exception, requests.exceptions.SSLError):
            return _config_error(f"The TLS connection to the host failed (its certificate could not be verified); {_UNREACHABLE_HOST_HINT}.")
        elif isinstance(response_or_exception, requests.exceptions.ConnectionError):
            cause = repr(response_or_exception)
            if any(marker in cause for marker in _NAME_RESOLUTION_MARKERS):
                return _config_error(f"The host name could not be resolved; {_UNREACHABLE_HOST_HINT}.")
            if "NewConnectionError" in cause and not self._answered.is_set():
                return _config_error(f"Could not connect to the host (nothing accepts connections there); {_UNREACHABLE_HOST_HINT}.")
            return _transient("The connection to Kore.ai failed or dropped mid-request; retried until the retries ran out.")
        elif isinstance(response_or_exception, requests.exceptions.Timeout):
            return _transient("Kore.ai did not answer in time; retried until the retries ran out.")
        return super().interpret_response(response_or_exception)


def _transient(message: str) -> ErrorResolution:
    return ErrorResolution(response_action=ResponseAction.RETRY, failure_type=FailureType.transient_error, error_message=message)


def _config_error(message: str) -> ErrorResolution:
    return ErrorResolution(response_action=ResponseAction.FAIL, failure_type=FailureType.config_error, error_message=message)


# --- Config and state ---------------------------------------------------------------------------------

DEFAULT_HOST = "https://platform.kore.ai"


@dataclass
class NormalizeConfig(ConfigTransformation):
    """The config as the manifest's interpolations expect it: blanks trimmed, `host` with its scheme and no
    trailing slash, `start_date` on the quarter hour. Without a `start_date` it refuses the config rather than
    let a read crawl from 1970 one empty window at a time.

    Why not `ConfigAddFields`/`ConfigRemapField`: trimming every string, nested ones included, and flooring a
    time to the quarter hour are not expressible in their interpolations.
    """

    def transform(self, config: MutableMapping[str, Any]) -> None:
        if not config.get("start_date"):
            # The source_callvolume package searches for the first day itself and always passes a start date.
            message = (
                "`start_date` is required when this manifest runs without the source_callvolume package, which alone "
                "can search for the account's first interval: set `start_date`, e.g. 2024-01-01T00:00:00Z."
            )
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)
        for key, value in list(config.items()):
            config[key] = _strip(value)
        host = config.get("host") or DEFAULT_HOST
        if isinstance(host, str):
            config["host"] = (host if "://" in host else f"https://{host}").rstrip("/")
        start = parse_utc(config.get("start_date"))
        if start is not None:
            config["start_date"] = format_utc(floor_to_interval(start))


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping):
        return {key: _strip(inner) for key, inner in value.items()}
    return value


@dataclass
class CursorOnTheGrid(StateMigration):
    """Puts a state's cursor on the quarter hour at or before it.

    Why: the first window of an incremental sync starts at `cursor − lookback`; from a cursor off the grid
    (edited by hand, or an off-grid interval end the API sent) every window edge would be off it too, and under
    the "intervals inside [from, to]" filter the interval straddling each edge would be lost. No declarative
    component rounds a state.
    """

    config: Config = field(default_factory=dict)
    parameters: InitVar[Mapping[str, Any]] = None

    def should_migrate(self, stream_state: Mapping[str, Any]) -> bool:
        cursor = parse_utc(stream_state.get(CURSOR_FIELD)) if isinstance(stream_state, Mapping) else None
        return cursor is not None and floor_to_interval(cursor) != cursor

    def migrate(self, stream_state: Mapping[str, Any]) -> Mapping[str, Any]:
        cursor = parse_utc(stream_state[CURSOR_FIELD])
        return {**stream_state, CURSOR_FIELD: format_utc(floor_to_interval(cursor))}  # type: ignore[arg-type]
