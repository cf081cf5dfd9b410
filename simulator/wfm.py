"""The account's other three WFM APIs: queues, agents and agent activity (Kore.ai's "WFM Integration" scope).

All three are read from the same account as the call-volume rows (`simulator.data.AccountData`), so the data
agree with each other:

- Queues: one per call-volume queue, ``{"accountId", "collectionPointId", "description"}``, where
  ``collectionPointId`` is the ``queueId`` the call-volume rows carry and ``description`` its ``queueName``.
  Kore.ai's reference writes the key both ``description`` (field table) and ``Description`` (sample), so the
  key is a choice (`QUEUE_DESCRIPTION_KEYS`; "mixed" alternates, first queue lower case). A bare array, no paging.
- Agents: ``agents`` of them (default three per queue), agent ``i`` working queue ``i % queues``, with an id
  ``a-`` plus a UUID-like string (7-4-4-4-12 hex digits, as in the reference) and synthetic names, all drawn
  from the seed. Served in that fixed order, a bare array paged by ``offset`` and ``limit`` query
  parameters (missing: 0 and 5, as in the reference; garbage: 400); a page past the end is ``[]``.
- Agent activity: status changes of every agent, generated per agent and day from the seed (lazily, the
  first time they are asked for, and day by day as the horizon moves). An agent works an eight-hour shift
  centred on its queue's busiest hour (on about 92% of days), logs in ``ready`` and logs out ``offline``,
  and in between changes state among ready/busy/acw/notready a few times an hour (2-9 an hour on weekdays,
  following the queue's hourly shape; fewer on weekends). About one change in twenty is followed, within
  the same second, by a second change of the same agent (another Activity, or ``notready`` again with
  another ReasonCode), so only (AgentId, EventTime, Activity, ReasonCode) tells events apart; no two events
  share all four. Every event carries a ReasonCode "1".."5". An event is published once its time is at or
  before the horizon and at or after data_start, like call-volume rows.

Time in ``EventTime`` is UTC, ``MM/DD/YYYY H:MM:SS``: month and day zero-padded, hour not (24-hour clock),
as the reference's sample ``10/20/2020 2:13:12`` reads. The activity filter keeps events whose time lies
within ``[fromTimeStamp, toTimeStamp]``, inclusive at both ends; both parameters are required. Events are
sorted by time, then AgentId, then the order in which one agent's changes happened (``desc`` reverses that
whole order). Kore.ai documents no paging, so an answer cap truncates silently: it keeps the earliest N
events of the window, whatever the order they are then written in.

Events can be held back (the latest N, of one agent or all, or given keys) and released later: a held event
is left out of every answer until then, at its own EventTime, as an event that arrives late would be.

Query parameters are percent-decoded (an unencoded ``+`` reads as a space, so ``+00:00`` sent raw is a 400);
a parameter given twice is a 400; unknown parameters are ignored.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
import threading
import uuid
from datetime import datetime, timezone

import orjson

from simulator.api import BadRequest
from simulator.data import DAY_SECONDS, AccountData, floor_to, parse_timestamp, serialise

QUEUE_DESCRIPTION_KEYS = ("description", "Description", "mixed")
ACTIVITY_ORDERS = ("asc", "desc")
ACTIVITIES = ("ready", "notready", "busy", "acw", "offline")
REASON_CODES = ("1", "2", "3", "4", "5")
DEFAULT_AGENTS_PER_QUEUE = 3
# The reference's example asks offset=0&limit=5; a request without limit gets that page size.
DEFAULT_AGENTS_LIMIT = 5
MAX_AGENTS_LIMIT = 10_000
SHIFT_HOURS = 8
# Out of 256: a day off, and a second change within the same second.
DAY_OFF_BELOW = 20
SAME_SECOND_BELOW = 13
WEEKEND_ACTIVITY_FACTOR = 0.35
FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam", "Maya",
    "Noor", "Oscar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yara",
)
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski",
    "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quist", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga",
)
EVENT_TIME = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})")
NON_NEGATIVE_INTEGER = re.compile(r"[0-9]+")


# ----- event times -----------------------------------------------------------------------------------

def format_event_time(seconds: int) -> str:
    """``MM/DD/YYYY H:MM:SS`` in UTC: month and day zero-padded, hour not, 24-hour clock."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    date = f"{moment.month:02d}/{moment.day:02d}/{moment.year:04d}"
    return f"{date} {moment.hour}:{moment.minute:02d}:{moment.second:02d}"


def parse_event_time(text: str) -> datetime:
    """The UTC datetime of an ``EventTime`` (one- or two-digit month, day and hour accepted); ValueError if not one."""
    match = EVENT_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an EventTime: {text!r}")
    month, day, year, hour, minute, second = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


# ----- query parameters --------------------------------------------------------------------------------

def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name} is given more than once")
    return values[0]


def parse_agents_query(params: dict[str, list[str]]) -> tuple[int, int]:
    """(offset, limit): a missing one takes its default (0, 5); anything but plain decimal digits is a 400."""
    offset_text = _single(params, "offset")
    limit_text = _single(params, "limit")
    offset = 0
    if offset_text is not None:
        if not NON_NEGATIVE_INTEGER.fullmatch(offset_text):
            raise BadRequest("offset must be a non-negative integer")
        offset = int(offset_text)
    limit = DEFAULT_AGENTS_LIMIT
    if limit_text is not None:
        if not NON_NEGATIVE_INTEGER.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_AGENTS_LIMIT:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_AGENTS_LIMIT}")
        limit = int(limit_text)
    return offset, limit


def parse_activity_query(params: dict[str, list[str]]) -> tuple[float, float]:
    """(from, to) in epoch seconds; both required, ISO 8601 UTC, from not after to."""
    bounds = []
    for name in ("fromTimeStamp", "toTimeStamp"):
        text = _single(params, name)
        if text is None:
            raise BadRequest(f"{name} is required")
        seconds = parse_timestamp(text)
        if seconds is None:
            raise BadRequest(f"{name} is not an ISO 8601 UTC timestamp")
        bounds.append(seconds)
    from_s, to_s = bounds
    if from_s > to_s:
        raise BadRequest("fromTimeStamp is after toTimeStamp")
    return from_s, to_s


# ----- the data ----------------------------------------------------------------------------------------

class Agent:
    __slots__ = ("agent_id", "record", "payload", "shift_start_hour", "hourly_weight")

    def __init__(self, agent_id: str, record: dict, shift_start_hour: int, hourly_weight: tuple[float, ...]):
        self.agent_id = agent_id
        self.record = record
        self.payload = serialise(record)
        self.shift_start_hour = shift_start_hour
        self.hourly_weight = hourly_weight


class Event:
    __slots__ = ("time", "key", "payload")

    def __init__(self, time: int, key: tuple[str, str, str, str]):
        self.time = time
        # (AgentId, EventTime, Activity, ReasonCode): the only identity an event has.
        self.key = key
        # Every value is plain ASCII without quotes or backslashes, so the JSON is written directly (fast).
        self.payload = '{{"AgentId":"{}","EventTime":"{}","Activity":"{}","ReasonCode":"{}"}}'.format(*key).encode()


def _byte_stream(text: str):
    """An endless, reproducible iterator of bytes (ints) drawn from `text`: SHAKE-256 in 1 KiB blocks."""
    return itertools.chain.from_iterable(
        hashlib.shake_256(f"{text}|{block}".encode()).digest(1024) for block in itertools.count()
    )


def _next_activity(current: str, draw: int) -> str:
    """The state an agent enters from `current` (never "offline": logging out ends the shift)."""
    if current == "ready":
        return "busy" if draw < 200 else "notready"
    if current == "busy":
        return "acw" if draw < 225 else "ready"
    if current == "acw":
        return "ready" if draw < 205 else "notready"
    if current == "notready":
        return "ready" if draw < 215 else "notready"
    return "ready"  # offline: logging in


class WfmData:
    """Queues, agents and activity of one account; thread-safe through `lock`."""

    def __init__(self, account: AccountData, *, account_id: str, seed: int, agents: int | None):
        if agents is not None and (not isinstance(agents, int) or isinstance(agents, bool) or agents < 0):
            raise ValueError("agents must be None or a non-negative integer")
        self.lock = threading.RLock()
        self.account_id = account_id
        self.seed = seed
        self._account = account
        count = DEFAULT_AGENTS_PER_QUEUE * len(account.queues) if agents is None else agents
        self._agents = [self._make_agent(index) for index in range(count)]
        self._account_json = orjson.dumps(account_id)
        self._times: list[int] = []
        self._events: list[Event] = []
        self._keys: set[tuple] = set()
        self._generated_until = floor_to(account.data_start_s, DAY_SECONDS)
        self._held: set[tuple] = set()

    # ----- queues and agents -------------------------------------------------------------------------

    def queue_records(self, description_key: str) -> list[dict]:
        records = []
        for index, queue in enumerate(self._account.queues):
            key = description_key
            if description_key == "mixed":
                key = "description" if index % 2 == 0 else "Description"
            records.append({"accountId": self.account_id, "collectionPointId": queue.queue_id, key: queue.name})
        return records

    def agent_records(self) -> list[dict]:
        return [dict(agent.record) for agent in self._agents]

    def agents_page(self, offset: int, limit: int) -> bytes:
        return b"[" + b",".join(agent.payload for agent in self._agents[offset:offset + limit]) + b"]"

    @property
    def agent_count(self) -> int:
        return len(self._agents)

    # ----- activity ----------------------------------------------------------------------------------

    def events(self, from_s: float | None = None, to_s: float | None = None) -> list[Event]:
        """Published events with from <= time <= to (None: unbounded), held ones left out, in ascending order."""
        account = self._account
        with self.lock:
            horizon_s = account.horizon_s
            self._generate_until(horizon_s)
            low = account.data_start_s if from_s is None else max(from_s, account.data_start_s)
            high = horizon_s if to_s is None else min(to_s, horizon_s)
            lo = bisect.bisect_left(self._times, low)
            hi = max(lo, bisect.bisect_right(self._times, high))
            window = self._events[lo:hi]
            if self._held:
                window = [event for event in window if event.key not in self._held]
            return window

    def activity_body(self, events: list[Event], order: str, cap: int | None) -> bytes:
        """The answer: the earliest `cap` events (None: all) of the ascending `events`, written in `order`."""
        if cap is not None:
            events = events[:cap]
        payloads = [event.payload for event in events]
        if order == "desc":
            payloads.reverse()
        return b'{"accountId":' + self._account_json + b',"AgentUpdates":[' + b",".join(payloads) + b"]}"

    def hold_back(self, last: int | None, keys, agent_id: str | None) -> list[tuple]:
        """Hide events until released: the `last` latest published ones (of `agent_id` only, if given), or `keys`."""
        with self.lock:
            if (last is None) == (keys is None):
                raise ValueError("give either last or keys")
            if keys is not None:
                chosen = [tuple(key) for key in keys]
                self._generate_until(self._account.horizon_s)
                unknown = [key for key in chosen if key not in self._keys]
                if unknown:
                    raise KeyError(f"unknown activity keys: {unknown}")
            else:
                if not isinstance(last, int) or last < 0:
                    raise ValueError("last must be a non-negative integer")
                published = [event for event in self.events() if agent_id is None or event.key[0] == agent_id]
                chosen = [event.key for event in published[len(published) - last:]] if last else []
            self._held.update(chosen)
            return chosen

    def release(self, keys) -> list[tuple]:
        """Publish held events again: `keys`, or every held one when None; returns what was released."""
        with self.lock:
            wanted = set(self._held) if keys is None else {tuple(key) for key in keys} & self._held
            released = [event.key for event in self._events if event.key in wanted]
            self._held.difference_update(wanted)
            return released

    @property
    def held(self) -> list[tuple]:
        with self.lock:
            return [event.key for event in self._events if event.key in self._held]

    # ----- generation --------------------------------------------------------------------------------

    def _make_agent(self, index: int) -> Agent:
        digest = hashlib.blake2b(f"{self.seed}|agent|{self.account_id}|{index}".encode(), digest_size=18).digest()
        agent_id = "a-" + str(uuid.UUID(bytes=digest[:16]))[1:]
        record = {
            "accountId": self.account_id,
            "agentId": agent_id,
            "firstName": FIRST_NAMES[digest[16] % len(FIRST_NAMES)],
            "lastName": LAST_NAMES[digest[17] % len(LAST_NAMES)],
        }
        queues = self._account.queues
        if queues:
            weights = queues[index % len(queues)].hourly_weight
        else:
            weights = tuple(1.0 if hour == 12 else 0.0 for hour in range(24))
        peak_hour = max(range(24), key=weights.__getitem__)
        shift_start = min(max(0, peak_hour - SHIFT_HOURS // 2), 24 - SHIFT_HOURS)
        return Agent(agent_id, record, shift_start, weights)

    def _generate_until(self, horizon_s: float) -> None:
        """Generate every day that starts at or before the horizon (days already made stay as they are)."""
        while self._generated_until <= horizon_s:
            day = self._generated_until
            events = []
            for agent in self._agents:
                events.extend(self._agent_day(agent, day))
            # Stable: one agent's changes within one second keep the order they happened in.
            events.sort(key=lambda event: (event.time, event.key[0]))
            self._events.extend(events)
            self._times.extend(event.time for event in events)
            self._keys.update(event.key for event in events)
            self._generated_until = day + DAY_SECONDS

    def _agent_day(self, agent: Agent, day: int) -> list[Event]:
        draws = _byte_stream(f"{self.seed}|activity|{self.account_id}|{agent.agent_id}|{day}")
        if next(draws) < DAY_OFF_BELOW:
            return []
        moment = datetime.fromtimestamp(day, timezone.utc)
        factor = WEEKEND_ACTIVITY_FACTOR if moment.weekday() >= 5 else 1.0
        date_text = f"{moment.month:02d}/{moment.day:02d}/{moment.year:04d} "
        seconds_of_day: list[int] = []
        for hour in range(agent.shift_start_hour, agent.shift_start_hour + SHIFT_HOURS):
            changes = max(1, round((2 + 6 * agent.hourly_weight[hour]) * factor) + next(draws) % 3 - 1)
            offsets: set[int] = set()
            while len(offsets) < changes:
                offsets.add((next(draws) << 8 | next(draws)) % 3600)
            seconds_of_day.extend(hour * 3600 + offset for offset in sorted(offsets))
        agent_id = agent.agent_id
        events: list[Event] = []
        activity, reason = "offline", ""

        def change(second: int, new_activity: str) -> None:
            nonlocal activity, reason
            draw = next(draws) % len(REASON_CODES)
            if new_activity == activity == "notready":
                # Another reason while staying not ready: never the same one.
                draw = (REASON_CODES.index(reason) + 1 + draw % (len(REASON_CODES) - 1)) % len(REASON_CODES)
            activity, reason = new_activity, REASON_CODES[draw]
            hour, rest = divmod(second, 3600)
            # format_event_time's spelling, without a datetime per event.
            event_time = f"{date_text}{hour}:{rest // 60:02d}:{rest % 60:02d}"
            events.append(Event(day + second, (agent_id, event_time, activity, reason)))

        last = len(seconds_of_day) - 1
        for index, second in enumerate(seconds_of_day):
            if index == last:
                change(second, "offline")
                break
            change(second, _next_activity(activity, next(draws)))
            if next(draws) < SAME_SECOND_BELOW:
                change(second, _next_activity(activity, next(draws)))
        return events
