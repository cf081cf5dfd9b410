"""What goes wrong between a client and the API, from a passing glitch to a server that lies for good.

- `Faults`: per-request probabilities of a transient fault (429, 5xx, truncated or non-JSON body,
  connection reset, hang), drawn reproducibly from a seed; `ForcedAndRandomFaults` also replays
  failures a test forces onto the next requests (`Simulator.fail_next`).
- `FailForever`: after N successful requests, every further one fails the same way: a 200 whose body
  is HTML, a TCP reset, or a 200 labelled ``Content-Encoding: gzip`` whose body is not gzip.
- `Drip`: which answers are written one byte at a time (all of them, or the first N).
- `ContradictoryProbe`: whether a request without ``fromTimeStamp`` is answered with an empty page that
  says ``hasMore: true`` and a positive ``totalCount``.
- Whole-answer replies: a redirect (3xx with ``Location``, no body) and a 400 that echoes the request's
  ``auth`` token in its message and in an ``X-Echo-Auth`` header.

The page-shaping hostile modes (skip ignored, endless pages, fields left out, a far-future row) change
how a page is assembled and live with the page assembly in `simulator.server`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from http import HTTPStatus

from simulator.api import error_body, error_reply
from simulator.transport import Reply

FAIL_FOREVER_KINDS = ("not_json", "reset", "bad_encoding")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
NOT_JSON_BODY = b"<html>gateway error</html>"


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


@dataclass(frozen=True)
class Fault:
    kind: str  # "status" (429/5xx), "truncated", "not_json", "reset" or "hang"
    status: int = 0
    retry_after: int | None = None
    hang_seconds: float = 0.0


class ForcedAndRandomFaults:
    """Draws the fault, if any, of each otherwise-valid request: forced failures first, then `Faults`."""

    def __init__(self, faults: Faults | None, seed: int):
        self._lock = threading.Lock()
        self._seed = seed
        self._forced: list[tuple[int, int | None]] = []
        self._rotating_5xx = 0
        self.faults = faults

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        # A new Faults starts a fresh, reproducible draw sequence.
        with self._lock:
            self._faults = faults or Faults()
            self._rng = random.Random(self._seed)
            self._eligible_requests = 0

    def force(self, status: int, count: int, retry_after: int | None) -> None:
        with self._lock:
            self._forced.extend([(status, retry_after)] * count)

    def draw(self) -> Fault | None:
        with self._lock:
            faults = self._faults
            if self._forced:
                status, retry_after = self._forced.pop(0)
                if status == 429 and retry_after is None:
                    retry_after = faults.retry_after
                return Fault("status", status, retry_after)
            self._eligible_requests += 1
            if faults.first_n_only is not None and self._eligible_requests > faults.first_n_only:
                return None
            draw = self._rng.random()
            for kind, rate in faults.weighted_kinds():
                if draw < rate:
                    break
                draw -= rate
            else:
                return None
            if kind == "429":
                return Fault("status", 429, faults.retry_after)
            if kind == "5xx":
                self._rotating_5xx += 1
                return Fault("status", (500, 502, 503)[(self._rotating_5xx - 1) % 3])
            return Fault(kind, hang_seconds=faults.hang_seconds)


def fault_reply(fault: Fault) -> Reply:
    """Every fault but "truncated", which needs the page it cuts short."""
    if fault.kind == "status":
        headers = () if fault.retry_after is None else (("Retry-After", str(fault.retry_after)),)
        return Reply(fault.status, error_body(HTTPStatus(fault.status).phrase), headers=headers)
    if fault.kind == "not_json":
        return Reply(200, NOT_JSON_BODY, content_type="text/html")
    return Reply(0, action=fault.kind, hang_seconds=fault.hang_seconds)


class FailForever:
    """After `after` successful answers, every further request fails as `kind` says; `after` None: never."""

    def __init__(self, after: int | None = None, kind: str = "not_json"):
        self._lock = threading.Lock()
        self.configure(after, kind)

    def configure(self, after: int | None, kind: str) -> None:
        if kind not in FAIL_FOREVER_KINDS:
            raise ValueError(f"fail_forever_kind must be one of {FAIL_FOREVER_KINDS}")
        if after is not None and (not isinstance(after, int) or after < 0):
            raise ValueError("fail_forever_after must be None or a non-negative integer")
        with self._lock:
            self.after = after
            self.kind = kind
            # Successes are counted from the moment the mode is set, so setting it mid-test means N more.
            self.successes = 0

    @property
    def tripped(self) -> bool:
        with self._lock:
            return self.after is not None and self.successes >= self.after

    def record_success(self) -> None:
        with self._lock:
            self.successes += 1

    def reply(self, page: bytes) -> Reply:
        """The failure; `page` is the answer the request deserved (sent unencoded for "bad_encoding")."""
        if self.kind == "not_json":
            return fault_reply(Fault("not_json"))
        if self.kind == "reset":
            return fault_reply(Fault("reset"))
        # What a proxy that labels every answer gzip but passes bodies through untouched sends.
        return Reply(200, page, headers=(("Content-Encoding", "gzip"),))


class Drip:
    """Which answers are dripped: `seconds` between bytes (None or 0: none), for the first `first_n` (None: all)."""

    def __init__(self, seconds: float | None = None, first_n: int | None = None):
        self._lock = threading.Lock()
        self.configure(seconds, first_n)

    def configure(self, seconds: float | None, first_n: int | None) -> None:
        if seconds is not None and seconds < 0:
            raise ValueError("drip_seconds must be None or non-negative")
        if first_n is not None and first_n < 0:
            raise ValueError("drip_first_n must be None or non-negative")
        with self._lock:
            self.seconds = seconds
            self.first_n = first_n
            # The first N are counted from the moment the mode is set.
            self.dripped = 0

    def take(self) -> float:
        """The pause for the answer about to be written (0: write it at once), counting it if dripped."""
        with self._lock:
            if not self.seconds or (self.first_n is not None and self.dripped >= self.first_n):
                return 0.0
            self.dripped += 1
            return self.seconds


class ContradictoryProbe:
    """Mode False (off), True (every request without fromTimeStamp) or "once" (only the first of them)."""

    def __init__(self, mode: bool | str = False):
        self._lock = threading.Lock()
        self.mode = mode

    @property
    def mode(self) -> bool | str:
        return self._mode

    @mode.setter
    def mode(self, mode: bool | str) -> None:
        if mode not in (False, True, "once"):
            raise ValueError('contradictory_probe must be False, True or "once"')
        with self._lock:
            self._mode = mode
            self._spent = False

    def take(self) -> bool:
        """Whether the request without fromTimeStamp being answered gets the contradictory page."""
        with self._lock:
            if self._mode is True:
                return True
            if self._mode == "once" and not self._spent:
                self._spent = True
                return True
            return False


def validate_redirect(redirect) -> tuple[int, str] | None:
    if redirect is None:
        return None
    status, location = redirect
    if status not in REDIRECT_STATUSES or not isinstance(location, str) or not location:
        raise ValueError(f"redirect must be None or (status in {REDIRECT_STATUSES}, non-empty location)")
    return int(status), location


def redirect_reply(status: int, location: str) -> Reply:
    return Reply(status, b"", content_type=None, headers=(("Location", location),))


def echo_auth_reply(token: str | None) -> Reply:
    """A 400 in Kore.ai's error shape that repeats the request's token, as careless servers do."""
    token = token or ""
    return error_reply(400, f"Invalid request for token {token}", headers=(("X-Echo-Auth", token),))
