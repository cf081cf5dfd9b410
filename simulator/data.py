"""What one Kore.ai account holds: call-volume rows, one per queue and 15-minute interval.

Rows are generated deterministically from a seed (each queue has its own volume and busiest hour, weekends
are quieter, ~10% of (queue, interval) pairs had no traffic and have no row). They are kept sorted by
(interval start, queue id) with their JSON pre-serialised, so a time window is two bisections and a page
is a bytes join: the server sustains several hundred thousand rows per second.

Besides the rows, this module models the data-side behaviours the public reference leaves open: which
timestamp the time filter applies to (`SEMANTICS`), the server's sort order (`ORDERS`), how late
intervals are published (horizon, rows held back), revisions (`__v` grows), and rows inserted or removed
while a client pages through a window. It also makes the rows a hostile server invents: fabricated rows
for a server that never stops paging, and one row decades in the future.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import math
import re
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone

import orjson

INTERVAL_SECONDS = 15 * 60
DAY_SECONDS = 24 * 3600
SEMANTICS = ("inside", "start", "end", "overlap")
ORDERS = ("asc", "desc", "shuffled")
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
MAX_CACHED_WINDOWS = 32
# Where a future row lands when no date is given: decades past any real data.
DEFAULT_FUTURE_ROW_START = datetime(2070, 1, 1, tzinfo=timezone.utc)


# ----- timestamps ----------------------------------------------------------------------------------

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


def to_utc(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC: the API speaks UTC only.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def epoch(value: datetime | str) -> float:
    if isinstance(value, datetime):
        return to_utc(value).timestamp()
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 UTC timestamp: {value!r}")
    return parsed


def floor_to(seconds: float, step: int) -> int:
    return int(seconds // step * step)


# ----- rows ----------------------------------------------------------------------------------------

class Queue:
    __slots__ = ("queue_id", "name", "base_volume", "hourly_weight", "hasher")

    def __init__(self, queue_id: str, name: str, base_volume: int, hourly_weight: tuple[float, ...], hasher):
        self.queue_id = queue_id
        self.name = name
        self.base_volume = base_volume
        self.hourly_weight = hourly_weight
        # blake2b state that has already absorbed seed and queue id: rows only add their interval start.
        self.hasher = hasher


class Row:
    __slots__ = ("start", "queue_id", "record_id", "shuffle_key", "payload")

    def __init__(self, start: int, queue_id: str, record_id: str, shuffle_key: int, payload: bytes):
        self.start = start
        self.queue_id = queue_id
        self.record_id = record_id
        self.shuffle_key = shuffle_key
        self.payload = payload


def serialise(record: dict) -> bytes:
    # orjson hands back a bytes object with ~4 KiB reserved; an exact copy keeps 1M rows in memory.
    return bytes(memoryview(orjson.dumps(record)))


def _slot(start: int) -> tuple[int, bytes, str, str, int, float]:
    """What every row of one interval shares: start, its hash input, both timestamps, hour, volume factor."""
    moment = datetime.fromtimestamp(start, timezone.utc)
    day_factor = WEEKEND_VOLUME_FACTOR if moment.weekday() >= 5 else 1.0
    start_text = format_timestamp(start)
    return start, start_text.encode(), start_text, format_timestamp(start + INTERVAL_SECONDS), moment.hour, day_factor


def window_bounds(starts: list[int], semantics: str, from_s: float | None, to_s: float) -> tuple[int, int]:
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


class AccountData:
    """The rows of one account and every change a test makes to them; thread-safe through `lock`."""

    def __init__(
        self,
        *,
        account_id: str,
        org_id: str,
        queues: int,
        days: int,
        data_start: datetime | None,
        horizon: datetime | None,
        semantics: str,
        order: str,
        seed: int,
        now: float,
    ):
        self.lock = threading.RLock()
        self.semantics = semantics
        self.order = order
        self.org_id = org_id
        self.seed = seed
        horizon_s = to_utc(horizon).timestamp() if horizon else floor_to(now, INTERVAL_SECONDS)
        self.horizon_s = horizon_s
        if data_start is not None:
            self.data_start_s = floor_to(to_utc(data_start).timestamp(), INTERVAL_SECONDS)
        else:
            self.data_start_s = floor_to(horizon_s, DAY_SECONDS) - days * DAY_SECONDS
        self.instance_id = "i-" + str(uuid.UUID(bytes=self._digest(f"instance|{account_id}", 16)))
        self._queues = [self._make_queue(index) for index in range(queues)]
        self._rows: list[Row] = []
        self._starts: list[int] = []
        self._rows_by_id: dict[str, Row] = {}
        self._held_ids: set[str] = set()
        self._generated_until = self.data_start_s
        self._window_cache: OrderedDict[tuple, list[Row]] = OrderedDict()
        self._armed_mutation: dict | None = None
        self.mutations: list[dict] = []
        self._inserted_count = 0
        self.fabricated_ids: list[str] = []
        self._generate_until(horizon_s)

    # The filter rule and the order decide every window: changing either drops the cached windows.

    @property
    def semantics(self) -> str:
        return self._semantics

    @semantics.setter
    def semantics(self, semantics: str) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}")
        self._semantics = semantics
        self._window_cache = OrderedDict()

    @property
    def order(self) -> str:
        return self._order

    @order.setter
    def order(self, order: str) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        self._order = order
        self._window_cache = OrderedDict()

    # ----- reading ---------------------------------------------------------------------------------

    @property
    def queues(self) -> list[Queue]:
        """The account's queues, in id order (rows inserted mid-paging use queues of their own, not listed)."""
        return list(self._queues)

    def window(self, from_s: float | None, to_s: float) -> list[Row]:
        """Published rows matching the filter, in the server's order (cached: clients page the same window)."""
        key = (from_s, to_s)
        with self.lock:
            cached = self._window_cache.get(key)
            if cached is not None:
                self._window_cache.move_to_end(key)
                return cached
            lo, hi = window_bounds(self._starts, self.semantics, from_s, to_s)
            hi = min(hi, bisect.bisect_right(self._starts, self.horizon_s - INTERVAL_SECONDS))
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

    def records(self, from_s: float | None, to_s: float) -> list[dict]:
        with self.lock:
            return [orjson.loads(row.payload) for row in self.window(from_s, to_s)]

    # ----- changes a test makes --------------------------------------------------------------------

    def set_horizon(self, horizon_s: float) -> None:
        with self.lock:
            self.horizon_s = horizon_s
            self._generate_until(horizon_s)
            self._changed()

    def hold_back(self, record_ids) -> None:
        with self.lock:
            self._require_known(record_ids)
            self._held_ids.update(record_ids)
            self._changed()

    def release(self, record_ids) -> None:
        with self.lock:
            self._held_ids.difference_update(record_ids)
            self._changed()

    def revise(self, record_ids) -> None:
        with self.lock:
            self._require_known(record_ids)
            for record_id in record_ids:
                row = self._rows_by_id[record_id]
                record = orjson.loads(row.payload)
                record["__v"] += 1
                record["offeredContacts"] += 1
                record["answeredContacts"] += 1
                record["completedContacts"] += 1
                row.payload = serialise(record)
            self._changed()

    # ----- rows inserted or removed while a client pages -------------------------------------------

    def arm_mutation(self, kind: str, count: int, after_requests: int) -> None:
        if count < 1 or after_requests < 1:
            raise ValueError("count and after_requests must be at least 1")
        with self.lock:
            self._armed_mutation = {"kind": kind, "count": count, "pages_left": after_requests}

    def after_page_with_more(self, window: list[Row], from_text: str | None, to_text: str, offset: int) -> None:
        """Called, under `lock`, after each page delivered with more rows to follow."""
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
        self.mutations.append({
            "kind": armed["kind"],
            "record_ids": [row.record_id for row in affected],
            "offset": offset,
            "fromTimeStamp": from_text,
            "toTimeStamp": to_text,
        })
        self._changed()

    # ----- rows a hostile server invents -----------------------------------------------------------

    def fabricate(self, from_s: float | None, to_s: float) -> Row:
        """A new, well-formed row with an `_id` never served before, in an interval inside [from, to].

        Intervals that lie wholly inside the window match every filter rule. When no whole interval fits
        (a window under 15 minutes, or unaligned), the interval holding `from` is used: it overlaps.
        The row is not stored: `records()` never lists it.
        """
        with self.lock:
            number = len(self.fabricated_ids)
            lo = self.data_start_s if from_s is None else from_s
            hi = to_s
            if min(hi, self.horizon_s) - INTERVAL_SECONDS >= lo:
                hi = min(hi, self.horizon_s)  # published intervals, when the window has any
            first = math.ceil(lo / INTERVAL_SECONDS) * INTERVAL_SECONDS
            last = floor_to(hi, INTERVAL_SECONDS) - INTERVAL_SECONDS if math.isfinite(hi) else first
            if last < first:
                start = floor_to(lo, INTERVAL_SECONDS)
            else:
                start = first + (number % ((last - first) // INTERVAL_SECONDS + 1)) * INTERVAL_SECONDS
            queue = self._any_queue(number)
            hasher = hashlib.blake2b(f"{self.seed}|fabricated|{number}|".encode(), digest_size=32)
            row = self._make_row(queue, _slot(start), skip_absent=False, hasher=hasher)
            self.fabricated_ids.append(row.record_id)
            return row

    def future_row(self, start: datetime) -> Row:
        """The row of the first queue for the interval holding `start` (decades ahead, say), never stored."""
        start_s = floor_to(to_utc(start).timestamp(), INTERVAL_SECONDS)
        queue = self._any_queue(0)
        hasher = hashlib.blake2b(f"{self.seed}|future|{queue.queue_id}|".encode(), digest_size=32)
        return self._make_row(queue, _slot(start_s), skip_absent=False, hasher=hasher)

    # ----- generation ------------------------------------------------------------------------------

    def _digest(self, text: str, size: int = 32) -> bytes:
        return hashlib.blake2b(f"{self.seed}|{text}".encode(), digest_size=size).digest()

    def _make_queue(self, index: int) -> Queue:
        name = QUEUE_NAMES[index % len(QUEUE_NAMES)]
        if index >= len(QUEUE_NAMES):
            name = f"{name} {index // len(QUEUE_NAMES) + 1}"
        return self._queue(f"qu-{index + 1:04d}", name, peak_hour=7 + (index * 5) % 13)

    def _queue(self, queue_id: str, name: str, peak_hour: int) -> Queue:
        # Each queue peaks at its own hour, so the busiest queue differs through the day.
        weights = tuple(0.06 + math.exp(-((hour - peak_hour) ** 2) / 8) for hour in range(24))
        hasher = hashlib.blake2b(f"{self.seed}|{queue_id}|".encode(), digest_size=32)
        return Queue(queue_id, name, 6 + self._digest(queue_id)[0] % 25, weights, hasher)

    def _any_queue(self, number: int) -> Queue:
        if self._queues:
            return self._queues[number % len(self._queues)]
        return self._queue("qu-0001", QUEUE_NAMES[0], peak_hour=12)

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

    def _make_row(self, queue: Queue, slot: tuple, skip_absent: bool, hasher=None) -> Row | None:
        start, slot_key, start_text, end_text, hour, day_factor = slot
        hasher = (hasher or queue.hasher).copy()
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
            "iId": self.instance_id,
            "offeredContacts": offered,
            "answeredContacts": answered,
            "completedContacts": completed,
            "abandonedContacts": abandoned,
            "maxQueueHoldTimeAnswered": _max_wait(answered, wait_answered, digest[23]),
            "queueHoldTimeAnswered": answered * wait_answered,
            "maxqueueHoldTimeAbandoned": _max_wait(abandoned, wait_abandoned, digest[24]),
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
        return Row(start, queue.queue_id, record["_id"], shuffle_key, serialise(record))

    # ----- bookkeeping -----------------------------------------------------------------------------

    def _require_known(self, record_ids) -> None:
        unknown = [record_id for record_id in record_ids if record_id not in self._rows_by_id]
        if unknown:
            raise KeyError(f"unknown record ids: {unknown}")

    def _changed(self) -> None:
        self._window_cache.clear()

    def _insert_row(self, row: Row) -> None:
        lo = bisect.bisect_left(self._starts, row.start)
        hi = bisect.bisect_right(self._starts, row.start)
        queue_ids = [self._rows[index].queue_id for index in range(lo, hi)]
        index = lo + bisect.bisect_left(queue_ids, row.queue_id)
        self._rows.insert(index, row)
        self._starts.insert(index, row.start)
        self._rows_by_id[row.record_id] = row

    def _remove_row(self, row: Row) -> None:
        lo = bisect.bisect_left(self._starts, row.start)
        index = self._rows.index(row, lo)
        del self._rows[index]
        del self._starts[index]
        del self._rows_by_id[row.record_id]
        self._held_ids.discard(row.record_id)

    def _insert_before(self, first: Row) -> Row:
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


def _max_wait(contacts: int, average_wait: int, spread: int) -> int:
    if contacts <= 1:
        return contacts * average_wait
    return average_wait + average_wait * spread // 255
