"""In-process test double of the Kore.ai AgentAssist call-volume API.

`Simulator` serves ``POST /agentassist/api/public/analytics/account/{accountId}/callvolume`` on
127.0.0.1 from deterministic synthetic data (one row per queue and 15-minute interval) and lets a
test choose every behaviour the public reference leaves open (see /work/shared/api/callvolume.md):
which timestamp the time filter applies to, the largest page honoured, sort order, late publication,
revisions, rows inserted or removed while a client pages, JTI enforcement, and injected faults.

Rows are kept sorted by (interval start, queue id) with their JSON pre-serialised, so a time window is
two bisections and a page is a bytes join: the server sustains several hundred thousand rows per second.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import orjson

INTERVAL_SECONDS = 15 * 60
DAY_SECONDS = 24 * 3600
MAX_LIMIT = 10_000
MAX_JTI_TOKEN_LIFETIME_SECONDS = 3600
SEMANTICS = ("inside", "start", "end", "overlap")
ORDERS = ("asc", "desc", "shuffled")
CALLVOLUME_PATH = re.compile(r"/agentassist/api/public/analytics/account/([^/]+)/callvolume")
ISO_UTC_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|\+00:00)"
)
QUEUE_NAMES = (
    "Billing", "Sales", "Support", "Retention", "Technical", "Claims", "Onboarding", "Collections",
    "Renewals", "Escalations", "Returns", "Shipping", "Payments", "Fraud", "Loyalty", "Accounts",
)
# ~10% of (queue, interval) pairs had no traffic, so the API has no row for them.
ABSENT_BELOW = 26
WEEKEND_VOLUME_FACTOR = 0.35
TOKEN_LIFETIME_SECONDS = 3600

INVALID_TOKEN = "Invalid or expired token"
MAX_CACHED_WINDOWS = 32


@dataclass(frozen=True)
class Faults:
    """Per-request fault probabilities; at most one fault is drawn per otherwise-valid request."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_truncated: float = 0.0
    rate_not_json: float = 0.0
    rate_reset: float = 0.0
    rate_hang: float = 0.0
    retry_after: int = 1
    hang_seconds: float = 30
    first_n_only: int | None = None

    def __post_init__(self):
        rates = [rate for _, rate in self.weighted_kinds()]
        if min(rates) < 0 or sum(rates) > 1:
            raise ValueError("fault rates must be non-negative and sum to at most 1")

    def weighted_kinds(self) -> tuple[tuple[str, float], ...]:
        return (
            ("429", self.rate_429), ("5xx", self.rate_5xx), ("truncated", self.rate_truncated),
            ("not_json", self.rate_not_json), ("reset", self.rate_reset), ("hang", self.rate_hang),
        )


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # "reset" closes the socket without an answer, "hang" waits first; both are logged as status 0.
    action: str | None = None
    hang_seconds: float = 0.0


@dataclass(frozen=True)
class _Fault:
    kind: str  # "status" (429/5xx), "truncated", "not_json", "reset" or "hang"
    status: int = 0
    retry_after: int | None = None
    hang_seconds: float = 0.0


@dataclass(frozen=True)
class _Queue:
    queue_id: str
    name: str
    base_volume: int
    hourly_weight: tuple[float, ...]
    # blake2b state that has already absorbed seed and queue id: rows only add their interval start.
    hasher: "hashlib._Hash"


@dataclass(frozen=True)
class _Query:
    from_s: float | None
    to_s: float
    skip: int
    limit: int
    from_text: str | None
    to_text: str


class _BadRequest(Exception):
    pass


class _Row:
    __slots__ = ("start", "queue_id", "record_id", "shuffle_key", "payload")

    def __init__(self, start: int, queue_id: str, record_id: str, shuffle_key: int, payload: bytes):
        self.start = start
        self.queue_id = queue_id
        self.record_id = record_id
        self.shuffle_key = shuffle_key
        self.payload = payload


def _serialise(record: dict) -> bytes:
    # orjson hands back a bytes object with ~4 KiB reserved; an exact copy keeps 1M rows in memory.
    return bytes(memoryview(orjson.dumps(record)))


def _error_body(message: str) -> bytes:
    return orjson.dumps({"errors": [{"msg": message}]})


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, _error_body(message))


def _to_utc(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC: the API speaks UTC only.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _epoch(value: datetime | str) -> float:
    if isinstance(value, datetime):
        return _to_utc(value).timestamp()
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 UTC timestamp: {value!r}")
    return parsed


def _floor(seconds: float, step: int) -> int:
    return int(seconds // step * step)


def parse_timestamp(text: object) -> float | None:
    """Epoch seconds of an ISO 8601 UTC timestamp (``Z`` or ``+00:00``, optional fraction), else None."""
    match = ISO_UTC_TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        moment = datetime(*(int(part) for part in match.groups()[:6]), tzinfo=timezone.utc)
    except ValueError:
        return None
    fraction = match.group(7)
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def format_timestamp(seconds: float) -> str:
    """The API's own spelling: milliseconds and ``Z``."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _slot(start: int) -> tuple[int, bytes, str, str, int, float]:
    """What every row of one interval shares: start, its hash input, both timestamps, hour, volume factor."""
    moment = datetime.fromtimestamp(start, timezone.utc)
    day_factor = WEEKEND_VOLUME_FACTOR if moment.weekday() >= 5 else 1.0
    start_text = format_timestamp(start)
    return start, start_text.encode(), start_text, format_timestamp(start + INTERVAL_SECONDS), moment.hour, day_factor


def _window_bounds(starts: list[int], semantics: str, from_s: float | None, to_s: float) -> tuple[int, int]:
    """Index range of rows matching the time filter, found by bisecting interval starts.

    Every interval lasts exactly INTERVAL_SECONDS, so each rule is a range on the start alone:
    inside  start >= from and end <= to   ->  from <= start <= to - 15m
    start   from <= start < to
    end     from < end <= to              ->  from - 15m < start <= to - 15m
    overlap start < to and end > from     ->  from - 15m < start < to
    """
    last_start = to_s - INTERVAL_SECONDS
    if semantics in ("inside", "start"):
        lo = 0 if from_s is None else bisect.bisect_left(starts, from_s)
    else:
        lo = 0 if from_s is None else bisect.bisect_right(starts, from_s - INTERVAL_SECONDS)
    if semantics in ("inside", "end"):
        hi = bisect.bisect_right(starts, last_start)
    else:
        hi = bisect.bisect_left(starts, to_s)
    return lo, max(lo, hi)


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, simulator: "Simulator"):
        self.simulator = simulator
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # Clients that drop a connection mid-answer are routine in fault tests, not server errors.
        pass

    def close_open_connections(self):
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KoreCallVolumeSimulator/1.0"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus delayed ACK adds ~40 ms a page.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self):
        simulator: Simulator = self.server.simulator
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            # The rest of the stream cannot be framed: judge the request as bodiless, then hang up.
            length, self.close_connection = 0, True
        raw_body = self.rfile.read(length) if length > 0 else b""
        if simulator.latency:
            time.sleep(simulator.latency)
        reply = simulator._answer(self.command, self.path, self.headers.get("auth"), raw_body)
        if reply.action == "hang":
            simulator._stopping.wait(reply.hang_seconds)
        if reply.action is not None:
            self._drop_connection(reset=reply.action == "reset")
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _drop_connection(self, reset: bool):
        self.close_connection = True
        if reset:
            # Linger 0 makes close() send RST, the way a crashed gateway looks to the client.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Simulator:
    """A call-volume API server on 127.0.0.1 with deterministic data and test controls."""

    def __init__(
        self,
        *,
        account_id: str = "acc-sim-001",
        org_id: str = "o-01aedac2-26fb-5bdb-bb0f-f71292ca0001",
        client_id: str = "cs-5e5f7c1a-0000-4000-8000-000000000001",
        client_secret: str = "sim-secret-please-change-0123456789abcdef",
        queues: int = 6,
        days: int = 14,
        data_start: datetime | None = None,
        horizon: datetime | None = None,
        semantics: str = "overlap",
        page_cap: int | None = None,
        default_limit: int = 100,
        enforce_jti: bool = False,
        scope_granted: bool = True,
        latency: float = 0.0,
        order: str = "asc",
        faults: Faults | None = None,
        seed: int = 7,
        port: int = 0,
    ):
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        if page_cap is not None and page_cap < 1:
            raise ValueError("page_cap must be at least 1")
        self.account_id = account_id
        self.org_id = org_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.semantics = semantics
        self.page_cap = page_cap
        self.default_limit = default_limit
        self.enforce_jti = enforce_jti
        self.scope_granted = scope_granted
        self.latency = latency
        self.order = order
        self.seed = seed
        self.port = port

        horizon_s = _to_utc(horizon).timestamp() if horizon else _floor(time.time(), INTERVAL_SECONDS)
        self._horizon_s = horizon_s
        if data_start is not None:
            self._data_start_s = _floor(_to_utc(data_start).timestamp(), INTERVAL_SECONDS)
        else:
            self._data_start_s = _floor(horizon_s, DAY_SECONDS) - days * DAY_SECONDS
        self._instance_id = "i-" + str(uuid.UUID(bytes=self._digest(f"instance|{account_id}", 16)))
        self._queues = [self._make_queue(index) for index in range(queues)]

        self._lock = threading.RLock()
        self._rows: list[_Row] = []
        self._starts: list[int] = []
        self._rows_by_id: dict[str, _Row] = {}
        self._held_ids: set[str] = set()
        self._generated_until = self._data_start_s
        self._window_cache: OrderedDict[tuple, list[_Row]] = OrderedDict()
        self._armed_mutation: dict | None = None
        self._mutations: list[dict] = []
        self._inserted_count = 0
        self._used_jtis: set[str] = set()
        self._forced_failures: list[tuple[int, int | None]] = []
        self._fault_lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        self._fault_eligible_requests = 0
        self._rotating_5xx = 0
        self._faults = faults or Faults()
        self._log_lock = threading.Lock()
        self._request_log: list[dict] = []
        self._server: _SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._generate_until(horizon_s)

    # ----- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on 127.0.0.1 and return the base URL; a restart after stop() keeps the same port."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = _SimulatorHTTPServer(("127.0.0.1", self.port), self)
        # Remembered so an outage test can stop() and start() without invalidating configs it handed out.
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="callvolume-simulator",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and drop open connections, including keep-alive ones and hung answers."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        # Idle keep-alive connections would otherwise keep being served by their handler threads.
        self._server.close_open_connections()
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> "Simulator":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str | None:
        if self._server is None:
            return None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ----- helpers for tests -----------------------------------------------------------------------

    @property
    def data_start(self) -> datetime:
        return datetime.fromtimestamp(self._data_start_s, timezone.utc)

    @property
    def horizon(self) -> datetime:
        return datetime.fromtimestamp(self._horizon_s, timezone.utc)

    def token(self, **claims_overrides) -> str:
        """A valid HS256 token; an override of None removes that claim."""
        now = int(time.time())
        claims = {"appId": self.client_id, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS, "jti": str(uuid.uuid4())}
        claims.update(claims_overrides)
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, self.client_secret, algorithm="HS256")

    def config(self, **overrides) -> dict:
        config = {
            "host": self.url,
            "account_id": self.account_id,
            "org_id": self.org_id,
            "credentials": {
                "auth_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            "start_date": self.data_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        config.update(overrides)
        return config

    def records(self, from_ts: datetime | str | None = None, to_ts: datetime | str | None = None) -> list[dict]:
        """Rows currently published, filtered by the active semantics, in the server's order."""
        from_s = None if from_ts is None else _epoch(from_ts)
        to_s = math.inf if to_ts is None else _epoch(to_ts)
        with self._lock:
            window = self._ordered_window(from_s, to_s)
            return [orjson.loads(row.payload) for row in window]

    @property
    def requests(self) -> list[dict]:
        """One dict per request received: path, body, auth, claims, status (0: reset or hang), received_at (monotonic)."""
        with self._log_lock:
            return list(self._request_log)

    def reset_log(self) -> None:
        with self._log_lock:
            self._request_log.clear()

    @property
    def mutations(self) -> list[dict]:
        with self._lock:
            return list(self._mutations)

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        # A new Faults starts a fresh, reproducible draw sequence.
        with self._fault_lock:
            self._faults = faults or Faults()
            self._fault_rng = random.Random(self.seed)
            self._fault_eligible_requests = 0

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """The next `count` otherwise-valid requests answer `status` (429 always carries Retry-After)."""
        with self._fault_lock:
            self._forced_failures.extend([(status, retry_after)] * count)

    def set_horizon(self, horizon: datetime) -> None:
        """Publish every interval that ends at or before `horizon` (and hide later ones again)."""
        horizon_s = _to_utc(horizon).timestamp()
        with self._lock:
            self._horizon_s = horizon_s
            self._generate_until(horizon_s)
            self._changed()

    def hold_back(self, record_ids) -> None:
        with self._lock:
            self._require_known(record_ids)
            self._held_ids.update(record_ids)
            self._changed()

    def release(self, record_ids) -> None:
        with self._lock:
            self._held_ids.difference_update(record_ids)
            self._changed()

    def revise(self, record_ids) -> None:
        """Bump `__v` and add one answered contact, as a late re-aggregation would."""
        with self._lock:
            self._require_known(record_ids)
            for record_id in record_ids:
                row = self._rows_by_id[record_id]
                record = orjson.loads(row.payload)
                record["__v"] += 1
                record["offeredContacts"] += 1
                record["answeredContacts"] += 1
                record["completedContacts"] += 1
                row.payload = _serialise(record)
            self._changed()

    def insert_during_paging(self, count: int, after_requests: int = 1) -> None:
        """After the `after_requests`-th page answered with hasMore=true, add `count` rows that sort
        before that page's end in the same window, so every later offset shifts right."""
        self._arm("insert", count, after_requests)

    def remove_during_paging(self, count: int, after_requests: int = 1) -> None:
        """Like insert_during_paging, but delete up to `count` rows already served (later rows shift left)."""
        self._arm("remove", count, after_requests)

    # ----- data ------------------------------------------------------------------------------------

    def _digest(self, text: str, size: int = 32) -> bytes:
        return hashlib.blake2b(f"{self.seed}|{text}".encode(), digest_size=size).digest()

    def _make_queue(self, index: int) -> _Queue:
        name = QUEUE_NAMES[index % len(QUEUE_NAMES)]
        if index >= len(QUEUE_NAMES):
            name = f"{name} {index // len(QUEUE_NAMES) + 1}"
        return self._queue(f"qu-{index + 1:04d}", name, peak_hour=7 + (index * 5) % 13)

    def _queue(self, queue_id: str, name: str, peak_hour: int) -> _Queue:
        # Each queue peaks at its own hour, so the busiest queue differs through the day.
        weights = tuple(0.06 + math.exp(-((hour - peak_hour) ** 2) / 8) for hour in range(24))
        hasher = hashlib.blake2b(f"{self.seed}|{queue_id}|".encode(), digest_size=32)
        return _Queue(queue_id, name, 6 + self._digest(queue_id)[0] % 25, weights, hasher)

    def _generate_until(self, horizon_s: float) -> None:
        # Generation allocates nothing cyclic; pausing the collector avoids rescanning a growing heap.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._append_intervals(horizon_s)
        finally:
            if collecting:
                gc.enable()

    def _append_intervals(self, horizon_s: float) -> None:
        start = self._generated_until
        rows, starts, by_id = self._rows, self._starts, self._rows_by_id
        while start + INTERVAL_SECONDS <= horizon_s:
            slot = _slot(start)
            for queue in self._queues:
                row = self._make_row(queue, slot, skip_absent=True)
                if row is not None:
                    rows.append(row)
                    starts.append(start)
                    by_id[row.record_id] = row
            start += INTERVAL_SECONDS
        self._generated_until = start

    def _make_row(self, queue: _Queue, slot: tuple, skip_absent: bool) -> _Row | None:
        start, slot_key, start_text, end_text, hour, day_factor = slot
        hasher = queue.hasher.copy()
        hasher.update(slot_key)
        digest = hasher.digest()
        if skip_absent and digest[12] < ABSENT_BELOW:
            return None
        offered = int(queue.base_volume * queue.hourly_weight[hour] * day_factor * (0.5 + digest[13] / 255))
        abandoned = offered * digest[14] // 1024
        answered = offered - abandoned
        # A few answered contacts are still open (transferred, in ACW) when the interval closes.
        completed = answered - 1 if answered and digest[15] < 40 else answered
        wait_answered = 2_000 + digest[16] * 150
        wait_abandoned = 10_000 + digest[17] * 300
        talk = 60_000 + digest[18] * 1_500
        hold = answered * digest[19] * 80
        acw = answered * (15_000 + digest[20] * 200)
        messages = answered * (4 + digest[21] % 16)
        csat_responses = answered * digest[22] // 1024
        record = {
            "_id": digest[:12].hex(),
            "intervalStartTimeStamp": start_text,
            "intervalEndTimeStamp": end_text,
            "orgId": self.org_id,
            "queueId": queue.queue_id,
            "queueName": queue.name,
            "source": "rtm",
            "__v": 0,
            "iId": self._instance_id,
            "offeredContacts": offered,
            "answeredContacts": answered,
            "completedContacts": completed,
            "abandonedContacts": abandoned,
            "maxQueueHoldTimeAnswered": self._max_wait(answered, wait_answered, digest[23]),
            "queueHoldTimeAnswered": answered * wait_answered,
            "maxqueueHoldTimeAbandoned": self._max_wait(abandoned, wait_abandoned, digest[24]),
            "queueHoldTimeAbandoned": abandoned * wait_abandoned,
            "acwDuration": acw,
            "conversationHandleTime": answered * talk + hold + acw,
            "conversationTalkTime": answered * talk,
            "holdDuration": hold,
            "messageCount": messages,
            "savedMessageCount": messages * digest[25] // 255,
            "csatResponses": csat_responses,
            "csatScore": 3 + digest[26] % 3 if csat_responses else 0,
        }
        shuffle_key = int.from_bytes(digest[27:], "big")
        return _Row(start, queue.queue_id, record["_id"], shuffle_key, _serialise(record))

    @staticmethod
    def _max_wait(contacts: int, average_wait: int, spread: int) -> int:
        if contacts <= 1:
            return contacts * average_wait
        return average_wait + average_wait * spread // 255

    def _require_known(self, record_ids) -> None:
        unknown = [record_id for record_id in record_ids if record_id not in self._rows_by_id]
        if unknown:
            raise KeyError(f"unknown record ids: {unknown}")

    def _changed(self) -> None:
        self._window_cache.clear()

    def _ordered_window(self, from_s: float | None, to_s: float) -> list[_Row]:
        """Published rows matching the filter, in the server's order (cached: clients page the same window)."""
        key = (from_s, to_s)
        cached = self._window_cache.get(key)
        if cached is not None:
            self._window_cache.move_to_end(key)
            return cached
        lo, hi = _window_bounds(self._starts, self.semantics, from_s, to_s)
        hi = min(hi, bisect.bisect_right(self._starts, self._horizon_s - INTERVAL_SECONDS))
        window = self._rows[lo:max(lo, hi)]
        if self._held_ids:
            window = [row for row in window if row.record_id not in self._held_ids]
        if self.order == "desc":
            window.reverse()
        elif self.order == "shuffled":
            window.sort(key=lambda row: (row.shuffle_key, row.record_id))
        self._window_cache[key] = window
        if len(self._window_cache) > MAX_CACHED_WINDOWS:
            self._window_cache.popitem(last=False)
        return window

    def _insert_row(self, row: _Row) -> None:
        lo = bisect.bisect_left(self._starts, row.start)
        hi = bisect.bisect_right(self._starts, row.start)
        queue_ids = [self._rows[index].queue_id for index in range(lo, hi)]
        index = lo + bisect.bisect_left(queue_ids, row.queue_id)
        self._rows.insert(index, row)
        self._starts.insert(index, row.start)
        self._rows_by_id[row.record_id] = row

    def _remove_row(self, row: _Row) -> None:
        lo = bisect.bisect_left(self._starts, row.start)
        index = self._rows.index(row, lo)
        del self._rows[index]
        del self._starts[index]
        del self._rows_by_id[row.record_id]
        self._held_ids.discard(row.record_id)

    # ----- paging mutations ------------------------------------------------------------------------

    def _arm(self, kind: str, count: int, after_requests: int) -> None:
        if count < 1 or after_requests < 1:
            raise ValueError("count and after_requests must be at least 1")
        with self._lock:
            self._armed_mutation = {"kind": kind, "count": count, "pages_left": after_requests}

    def _after_page_with_more(self, window: list[_Row], query: _Query, offset: int) -> None:
        armed = self._armed_mutation
        if armed is None:
            return
        armed["pages_left"] -= 1
        if armed["pages_left"]:
            return
        self._armed_mutation = None
        if armed["kind"] == "insert":
            affected = [self._insert_before(window[0]) for _ in range(armed["count"])]
        else:
            affected = window[:min(armed["count"], offset)]
            for row in affected:
                self._remove_row(row)
        self._mutations.append({
            "kind": armed["kind"],
            "record_ids": [row.record_id for row in affected],
            "offset": offset,
            "fromTimeStamp": query.from_text,
            "toTimeStamp": query.to_text,
        })
        self._changed()

    def _insert_before(self, first: _Row) -> _Row:
        """A new row in `first`'s interval that the server's order puts ahead of `first`."""
        self._inserted_count += 1
        # Queue ids are picked to sort before every other row of the interval in asc order (counting
        # down past earlier inserts) and after them in desc order; shuffled order gets an explicit key.
        if self.order == "desc":
            queue_id = f"qu-9999-{self._inserted_count:06d}"
        else:
            queue_id = f"qu-0000-{999_999 - self._inserted_count:06d}"
        queue = self._queue(queue_id, "Overflow", peak_hour=12)
        row = self._make_row(queue, _slot(first.start), skip_absent=False)
        if self.order == "shuffled":
            row.shuffle_key = first.shuffle_key - 1
        self._insert_row(row)
        return row

    # ----- request handling ------------------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, auth: str | None, raw_body: bytes) -> _Reply:
        body = None
        if raw_body:
            try:
                body = orjson.loads(raw_body)
            except orjson.JSONDecodeError:
                body = None
        path = raw_path.split("?", 1)[0]
        try:
            claims = jwt.decode(auth, options={"verify_signature": False}) if auth else None
        except jwt.PyJWTError:
            claims = None
        reply = self._decide(method, path, auth, body if isinstance(body, dict) else None)
        with self._log_lock:
            self._request_log.append({
                "path": path, "body": body, "auth": auth, "claims": claims,
                "status": 0 if reply.action else reply.status, "received_at": time.monotonic(),
            })
        return reply

    def _decide(self, method: str, path: str, auth: str | None, body: dict | None) -> _Reply:
        match = CALLVOLUME_PATH.fullmatch(path) if method == "POST" else None
        if match is None:
            return _error(404, "Not Found")
        auth_problem = self._authentication_problem(auth)
        if auth_problem:
            return _error(401, auth_problem)
        if not self.scope_granted:
            return _error(403, "Scope WFM Integration not granted")
        if match.group(1) != self.account_id:
            return _error(404, "Account not found")
        try:
            query = self._parse_query(body)
        except _BadRequest as problem:
            return _error(400, str(problem))
        fault = self._draw_fault()
        if fault is not None and fault.kind == "truncated":
            full = self._serve_page(query, page_delivered=False)
            return _Reply(200, full[: len(full) // 2])
        if fault is not None:
            return _fault_reply(fault)
        return _Reply(200, self._serve_page(query, page_delivered=True))

    def _authentication_problem(self, auth: str | None) -> str | None:
        if not auth:
            return INVALID_TOKEN
        try:
            claims = jwt.decode(auth, self.client_secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return INVALID_TOKEN
        # A numeric appId does not match even if its digits do: Kore compares strings.
        if not isinstance(claims.get("appId"), str) or claims["appId"] != self.client_id:
            return INVALID_TOKEN
        if not self.enforce_jti:
            return None
        if not all(name in claims for name in ("jti", "iat", "exp")):
            return "Token must carry jti, iat and exp"
        if claims["exp"] - claims["iat"] > MAX_JTI_TOKEN_LIFETIME_SECONDS:
            return "Token lifetime exceeds one hour"
        with self._lock:
            if claims["jti"] in self._used_jtis:
                return "jti already used"
            self._used_jtis.add(claims["jti"])
        return None

    def _parse_query(self, body: dict | None) -> _Query:
        if body is None:
            raise _BadRequest("Request body must be a JSON object")
        if "orgId" not in body or body["orgId"] is None:
            raise _BadRequest("orgId is required")
        if body["orgId"] != self.org_id:
            raise _BadRequest("orgId does not match the account")
        from_text = body.get("fromTimeStamp")
        to_text = body.get("toTimeStamp")
        if to_text is None:
            raise _BadRequest("toTimeStamp is required")
        to_s = parse_timestamp(to_text)
        if to_s is None:
            raise _BadRequest("toTimeStamp is not an ISO 8601 UTC timestamp")
        from_s = None
        if from_text is not None:
            from_s = parse_timestamp(from_text)
            if from_s is None:
                raise _BadRequest("fromTimeStamp is not an ISO 8601 UTC timestamp")
            if from_s > to_s:
                raise _BadRequest("fromTimeStamp is after toTimeStamp")
        skip = body.get("skip")
        skip = 0 if skip is None else skip
        if not _is_int(skip) or skip < 0:
            raise _BadRequest("skip must be a non-negative integer")
        limit = body.get("limit")
        limit = self.default_limit if limit is None else limit
        if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
            raise _BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
        return _Query(from_s, to_s, skip, limit, from_text, to_text)

    def _serve_page(self, query: _Query, page_delivered: bool) -> bytes:
        page_size = query.limit if self.page_cap is None else min(query.limit, self.page_cap)
        with self._lock:
            window = self._ordered_window(query.from_s, query.to_s)
            page = window[query.skip: query.skip + page_size]
            offset = query.skip + len(page)
            has_more = offset < len(window)
            body = b"".join((
                b'{"hasMore":', b"true" if has_more else b"false", b',"CallVolumeUpdate":[',
                b",".join([row.payload for row in page]),
                b'],"totalCount":', str(len(window)).encode(), b"}",
            ))
            if has_more and page_delivered:
                self._after_page_with_more(window, query, offset)
        return body

    def _draw_fault(self) -> _Fault | None:
        with self._fault_lock:
            faults = self._faults
            if self._forced_failures:
                status, retry_after = self._forced_failures.pop(0)
                if status == 429 and retry_after is None:
                    retry_after = faults.retry_after
                return _Fault("status", status, retry_after)
            self._fault_eligible_requests += 1
            if faults.first_n_only is not None and self._fault_eligible_requests > faults.first_n_only:
                return None
            draw = self._fault_rng.random()
            for kind, rate in faults.weighted_kinds():
                if draw < rate:
                    break
                draw -= rate
            else:
                return None
            if kind == "429":
                return _Fault("status", 429, faults.retry_after)
            if kind == "5xx":
                self._rotating_5xx += 1
                return _Fault("status", (500, 502, 503)[(self._rotating_5xx - 1) % 3])
            return _Fault(kind, hang_seconds=faults.hang_seconds)


def _fault_reply(fault: _Fault) -> _Reply:
    if fault.kind == "status":
        headers = () if fault.retry_after is None else (("Retry-After", str(fault.retry_after)),)
        return _Reply(fault.status, _error_body(HTTPStatus(fault.status).phrase), headers=headers)
    if fault.kind == "not_json":
        return _Reply(200, b"<html>gateway error</html>", content_type="text/html")
    return _Reply(0, action=fault.kind, hang_seconds=fault.hang_seconds)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
