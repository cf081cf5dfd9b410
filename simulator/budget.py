"""Kore.ai's documented rate limit for the WFM APIs: N requests per account per rolling 60 seconds.

The budget belongs to the account, not to one client: every request whose path names an account
(``/agentassist/api/public/analytics/account/{id}/...``, any endpoint) is counted under that id, whoever
sent it and whatever it is answered — a 401 for a bad token or a 404 for an unknown path costs a
request like any other, because Kore.ai counts the requests it receives. So a second client of the same
account (the contact centre's WFM tool, see `simulator.neighbour`) spends the same budget just by sending
requests with that account id.

Past the limit a request is answered 429 with Kore.ai's message and, only when configured, a
``Retry-After`` header (Kore.ai documents none). Whether those refused requests count toward the
window is an option, on by default (`count_refused`): a gateway that counts what it receives keeps a
client that hammers through its 429s locked out; off, only admitted requests count.

Thread-safe; time comes from a monotonic clock (replaceable, for tests).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

RATE_LIMIT_MESSAGE = "You've exceeded the per-minute rate limit. Please wait for sometime before retrying."
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    # Only for a refusal when a Retry-After is configured: the header's value.
    retry_after: int | None = None


class RateLimit:
    """Rolling-window limit per account, plus counters of every request received and every 429 sent.

    `per_minute` None: no limit (requests are still counted in `received`). `retry_after` None: no
    Retry-After header; an int: that value; "exact": whole seconds, rounded up, until the window frees a
    slot for the account if nothing else is sent meanwhile.
    """

    def __init__(
        self,
        per_minute: int | None = None,
        retry_after: int | str | None = None,
        count_refused: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lock = threading.Lock()
        self.per_minute = per_minute
        self.retry_after = retry_after
        self.count_refused = count_refused
        self.clock = clock
        self._windows: dict[str, deque[float]] = {}
        self.received: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    @property
    def per_minute(self) -> int | None:
        return self._per_minute

    @per_minute.setter
    def per_minute(self, per_minute: int | None) -> None:
        if per_minute is not None and (
            not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 1
        ):
            raise ValueError("rate_limit_per_minute must be None or a positive integer")
        with self._lock:
            self._per_minute = per_minute

    @property
    def retry_after(self) -> int | str | None:
        return self._retry_after

    @retry_after.setter
    def retry_after(self, retry_after: int | str | None) -> None:
        if retry_after is not None and retry_after != "exact" and (
            not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0
        ):
            raise ValueError('rate_limit_retry_after must be None, a non-negative integer or "exact"')
        self._retry_after = retry_after

    def admit(self, account: str) -> Verdict:
        """Count one request for `account` and say whether it is served."""
        with self._lock:
            self.received[account] += 1
            limit = self._per_minute
            if limit is None:
                return Verdict(True)
            now = self.clock()
            window = self._windows.setdefault(account, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if len(window) < limit:
                window.append(now)
                return Verdict(True)
            self.refused[account] += 1
            if self.count_refused:
                window.append(now)
            return Verdict(False, self._retry_after_value(window, limit, now))

    def in_window(self, account: str) -> int:
        """Requests of `account` the rolling window counts right now."""
        with self._lock:
            window = self._windows.get(account, ())
            horizon = self.clock() - WINDOW_SECONDS
            return sum(1 for moment in window if moment > horizon)

    def reset(self) -> None:
        """Forget the windows and counters (the limit's settings stay)."""
        with self._lock:
            self._windows.clear()
            self.received.clear()
            self.refused.clear()

    def _retry_after_value(self, window: deque[float], limit: int, now: float) -> int | None:
        if self._retry_after != "exact":
            return self._retry_after
        # A request is admitted once fewer than `limit` remain: the (len - limit + 1) oldest must expire.
        frees_at = window[len(window) - limit] + WINDOW_SECONDS
        return max(1, math.ceil(frees_at - now))
