"""A second client of the same account: the contact centre's own WFM tool, polling call volume.

Kore.ai's rate limit belongs to the account, so whatever the connector spends is taken from the tool
that runs forecasting and adherence in production. `Neighbour` plays that tool: a thread that asks for
the latest hour of call volume every `every` seconds, with the account's own credentials, and counts
how its requests were answered (a 429 is a request the connector took from it). It sends the
User-Agent `wfm-neighbour/1.0`, so the simulator's request log tells its requests apart.

It uses nothing but the standard library's `http.client`, so it can run next to any client under test.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urlsplit

import orjson

USER_AGENT = "wfm-neighbour/1.0"
POLLED_SPAN = timedelta(hours=1)


class Neighbour:
    """Polls ``POST .../account/{account_id}/callvolume`` every `every` seconds until stopped.

    `token` returns the ``auth`` header for each request (a fresh token each time suits JTI apps).
    `until` is the polled window's end (a datetime, or a callable returning one; default: now); the
    window is the hour before it. The first request goes out at start().
    """

    def __init__(
        self,
        url: str,
        *,
        account_id: str,
        org_id: str,
        token: Callable[[], str],
        every: float = 10.0,
        until: datetime | Callable[[], datetime] | None = None,
        timeout: float = 10.0,
    ):
        parts = urlsplit(url)
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = f"/agentassist/api/public/analytics/account/{account_id}/callvolume"
        self._org_id = org_id
        self._token = token
        self._until = until
        self.every = every
        self.timeout = timeout
        self.statuses: Counter[int] = Counter()  # 0: no answer (connection error or timeout)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sent(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self.statuses[429]

    def start(self) -> "Neighbour":
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="wfm-neighbour", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "Neighbour":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def poll_once(self) -> int:
        """Send one request now and return its status (0: no answer)."""
        until = self._until() if callable(self._until) else (self._until or datetime.now(timezone.utc))
        until = until.astimezone(timezone.utc)
        body = orjson.dumps({
            "orgId": self._org_id,
            "fromTimeStamp": (until - POLLED_SPAN).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "toTimeStamp": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "limit": 100,
        })
        headers = {"auth": self._token(), "Content-Type": "application/json", "User-Agent": USER_AGENT}
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            connection.close()
        with self._lock:
            self.statuses[status] += 1
        return status

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self.poll_once()
            next_at += self.every
            self._stopping.wait(max(0.0, next_at - time.monotonic()))
