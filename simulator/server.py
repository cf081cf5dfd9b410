"""In-process test double of Kore.ai's AgentAssist WFM APIs: the `Simulator`.

`Simulator` serves ``POST /agentassist/api/public/analytics/account/{accountId}/callvolume`` on
127.0.0.1 from deterministic synthetic data and lets a test choose every behaviour Kore.ai's public
reference leaves open: which timestamp the time filter applies to, the largest page honoured, sort
order, late publication, revisions, rows inserted or removed while a client pages, JTI enforcement,
injected faults, and Kore.ai's documented rate limit (60 requests per account per rolling minute).

From the same account it serves the other three WFM endpoints, ``GET .../queues``, ``GET .../agents``
(``offset``/``limit``) and ``GET .../agentactivity`` (``fromTimeStamp``/``toTimeStamp``), described in
`simulator.wfm`, with their own knobs: the agents' page cap and an ignored offset, the activity answer's
cap and order, the queues' description key, and activity held back and released later. Authentication,
scope, the account check, latency, the rate limit, the request log, `Faults` and `fail_next` apply to all
four endpoints alike; the hostile modes below are the call-volume endpoint's only.

It can also be hostile, for a client that must trust no answer; every such mode is off by default and
can be set at construction or on a running simulator: skip ignored, hasMore that never turns false,
hasMore or totalCount left out, a row decades in the future, redirects, a 400 that echoes the token,
an empty first-day answer that claims more rows, answers dripped one byte at a time, and a server that
fails for good after N answers.

This module decides what each request is answered; the parts it composes each model one concern:
`simulator.data` (the rows), `simulator.wfm` (queues, agents and agent activity), `simulator.api` (routes,
request and answer formats), `simulator.auth` (JWT and JTI), `simulator.budget` (the rate limit),
`simulator.faults` (faults and hostile answers), `simulator.transport` (the HTTP server and how a reply is
written) and `simulator.neighbour` (a second client of the same account).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from functools import partial
from typing import Callable

import orjson

from simulator.api import (
    CALLVOLUME_PATH,
    ENDPOINT_METHODS,
    MAX_LIMIT,
    BadRequest,
    Query,
    account_in_path,
    endpoint_in_path,
    error_reply,
    page_body,
    parse_query,
    split_target,
)
from simulator.auth import (
    INVALID_TOKEN,
    MAX_JTI_TOKEN_LIFETIME_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    JtiRegistry,
    authentication_problem,
    mint_token,
    unverified_claims,
)
from simulator.budget import RATE_LIMIT_MESSAGE, RateLimit
from simulator.data import (
    DAY_SECONDS,
    DEFAULT_FUTURE_ROW_START,
    INTERVAL_SECONDS,
    ORDERS,
    SEMANTICS,
    AccountData,
    epoch,
    format_timestamp,
    parse_timestamp,
    to_utc,
)
from simulator.faults import (
    FAIL_FOREVER_KINDS,
    REDIRECT_STATUSES,
    ContradictoryProbe,
    Drip,
    FailForever,
    Faults,
    ForcedAndRandomFaults,
    echo_auth_reply,
    fault_reply,
    redirect_reply,
    validate_redirect,
)
from simulator.neighbour import Neighbour
from simulator.transport import Reply, Request, SimulatorHTTPServer
from simulator.wfm import (
    ACTIVITY_ORDERS,
    QUEUE_DESCRIPTION_KEYS,
    WfmData,
    format_event_time,
    parse_activity_query,
    parse_agents_query,
    parse_event_time,
)

__all__ = [
    "ACTIVITY_ORDERS", "CALLVOLUME_PATH", "DAY_SECONDS", "FAIL_FOREVER_KINDS", "INTERVAL_SECONDS", "INVALID_TOKEN",
    "MAX_JTI_TOKEN_LIFETIME_SECONDS", "MAX_LIMIT", "ORDERS", "QUEUE_DESCRIPTION_KEYS", "RATE_LIMIT_MESSAGE",
    "REDIRECT_STATUSES", "SEMANTICS", "TOKEN_LIFETIME_SECONDS", "Faults", "Simulator", "format_event_time",
    "format_timestamp", "parse_event_time", "parse_timestamp",
]


class Simulator:
    """A WFM API server (call volume, queues, agents, agent activity) on 127.0.0.1 with deterministic data
    and test controls."""

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
        # Hostile modes, all off by default.
        ignore_skip: bool = False,
        endless_has_more: bool = False,
        omit_has_more: bool = False,
        omit_total_count: bool = False,
        unreadable_interval_start: bool = False,
        future_row: bool | datetime | None = None,
        redirect: tuple[int, str] | None = None,
        echo_auth_400: bool = False,
        contradictory_probe: bool | str = False,
        drip_seconds: float | None = None,
        drip_first_n: int | None = None,
        fail_forever_after: int | None = None,
        fail_forever_kind: str = "not_json",
        # Kore.ai's account-level rate limit, off by default.
        rate_limit_per_minute: int | None = None,
        rate_limit_retry_after: int | str | None = None,
        count_refused: bool = True,
        # The other WFM endpoints (see simulator.wfm).
        agents: int | None = None,
        agents_page_cap: int | None = None,
        ignore_offset: bool = False,
        activity_answer_cap: int | None = None,
        activity_order: str = "asc",
        queue_description_key: str = "description",
    ):
        if page_cap is not None and page_cap < 1:
            raise ValueError("page_cap must be at least 1")
        self.account_id = account_id
        self.org_id = org_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_cap = page_cap
        self.default_limit = default_limit
        self.enforce_jti = enforce_jti
        self.scope_granted = scope_granted
        self.latency = latency
        self.seed = seed
        self.port = port

        self._data = AccountData(
            account_id=account_id, org_id=org_id, queues=queues, days=days, data_start=data_start,
            horizon=horizon, semantics=semantics, order=order, seed=seed, now=time.time(),
        )
        # Reads the queues, data_start and horizon of the same account: every endpoint agrees.
        self._wfm = WfmData(self._data, account_id=account_id, seed=seed, agents=agents)
        self.agents_page_cap = agents_page_cap
        self.ignore_offset = ignore_offset
        self.activity_answer_cap = activity_answer_cap
        self.activity_order = activity_order
        self.queue_description_key = queue_description_key
        self._jtis = JtiRegistry()
        self._faults = ForcedAndRandomFaults(faults, seed)
        self._budget = RateLimit(rate_limit_per_minute, rate_limit_retry_after, count_refused)

        self.ignore_skip = ignore_skip
        self.endless_has_more = endless_has_more
        self.omit_has_more = omit_has_more
        self.omit_total_count = omit_total_count
        self.unreadable_interval_start = unreadable_interval_start
        self.echo_auth_400 = echo_auth_400
        self.redirect = redirect
        self._future_setting: bool | datetime | None = None
        self._future = None
        self._future_served = False
        self.future_row = future_row
        self._probe = ContradictoryProbe(contradictory_probe)
        self._drip = Drip(drip_seconds, drip_first_n)
        self._fail_forever = FailForever(fail_forever_after, fail_forever_kind)

        self._log_lock = threading.Lock()
        self._request_log: list[dict] = []
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ----- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on 127.0.0.1 and return the base URL; a restart after stop() keeps the same port."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = SimulatorHTTPServer(("127.0.0.1", self.port), self._respond, self._stopping)
        # Remembered so an outage test can stop() and start() without invalidating configs it handed out.
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="callvolume-simulator",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and drop open connections, including keep-alive ones, hung and dripping answers."""
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
        return f"http://127.0.0.1:{self._server.server_address[1]}"  # ignore-https-check: loopback only, no TLS

    # ----- helpers for tests -----------------------------------------------------------------------

    @property
    def data_start(self) -> datetime:
        return datetime.fromtimestamp(self._data.data_start_s, timezone.utc)

    @property
    def horizon(self) -> datetime:
        return datetime.fromtimestamp(self._data.horizon_s, timezone.utc)

    @property
    def semantics(self) -> str:
        return self._data.semantics

    @semantics.setter
    def semantics(self, semantics: str) -> None:
        self._data.semantics = semantics

    @property
    def order(self) -> str:
        return self._data.order

    @order.setter
    def order(self, order: str) -> None:
        self._data.order = order

    def token(self, **claims_overrides) -> str:
        """A valid HS256 token; an override of None removes that claim."""
        return mint_token(self.client_id, self.client_secret, **claims_overrides)

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
        """Rows currently published, filtered by the active semantics, in the server's order.

        Rows a hostile mode invents (fabricated rows, the future row) are never among them.
        """
        from_s = None if from_ts is None else epoch(from_ts)
        to_s = math.inf if to_ts is None else epoch(to_ts)
        return self._data.records(from_s, to_s)

    @property
    def requests(self) -> list[dict]:
        """One dict per request received, in arrival order:

        method, path (without query string), query (the query parameters, percent-decoded: name -> value,
        or -> list of values when a name is repeated; {} without any), endpoint ("callvolume", "queues",
        "agents" or "agentactivity", read from the path whatever the method; None for any other path),
        account_id (from the path, or None), body (parsed JSON, or None), auth (the ``auth`` header's value,
        or None), has_auth (bool), claims (the token's payload, unverified, or None), content_type and
        user_agent (header values, or None), headers (every header, names in lower case), received_at
        (time.monotonic() once the request was read), status (0: reset or hang), rate_limited (answered 429
        by the rate limit), answer (what produced the reply: "page" (any endpoint's data),
        "contradictory_probe", "error", "rate_limited", "redirect", "echo_auth", "fault", "fail_forever")
        and dripped (written one byte at a time).
        """
        with self._log_lock:
            return list(self._request_log)

    def reset_log(self) -> None:
        with self._log_lock:
            self._request_log.clear()

    @property
    def mutations(self) -> list[dict]:
        with self._data.lock:
            return list(self._data.mutations)

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        # A new Faults starts a fresh, reproducible draw sequence.
        self._faults.faults = faults

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """The next `count` otherwise-valid requests answer `status` (429 always carries Retry-After)."""
        self._faults.force(status, count, retry_after)

    def set_horizon(self, horizon: datetime) -> None:
        """Publish every interval that ends at or before `horizon` (and hide later ones again)."""
        self._data.set_horizon(to_utc(horizon).timestamp())

    def hold_back(self, record_ids) -> None:
        self._data.hold_back(record_ids)

    def release(self, record_ids) -> None:
        self._data.release(record_ids)

    def revise(self, record_ids) -> None:
        """Bump `__v` and add one answered contact, as a late re-aggregation would."""
        self._data.revise(record_ids)

    def insert_during_paging(self, count: int, after_requests: int = 1) -> None:
        """After the `after_requests`-th page answered with hasMore=true, add `count` rows that sort
        before that page's end in the same window, so every later offset shifts right."""
        self._data.arm_mutation("insert", count, after_requests)

    def remove_during_paging(self, count: int, after_requests: int = 1) -> None:
        """Like insert_during_paging, but delete up to `count` rows already served (later rows shift left)."""
        self._data.arm_mutation("remove", count, after_requests)

    # ----- queues, agents and agent activity -------------------------------------------------------
    # ignore_offset (every agents page is the offset-0 page) is a plain attribute; the settings below are
    # checked when set. Every one of them can be changed on a running simulator.

    def queues(self) -> list[dict]:
        """The queues as ``GET .../queues`` serves them now (with the current description key)."""
        return self._wfm.queue_records(self._queue_description_key)

    def agents(self) -> list[dict]:
        """Every agent, as ``GET .../agents`` serves them, in the server's order (all pages together)."""
        return self._wfm.agent_records()

    @property
    def agent_count(self) -> int:
        return self._wfm.agent_count

    def activity(self, from_ts: datetime | str | None = None, to_ts: datetime | str | None = None) -> list[dict]:
        """Agent activity published now with from <= EventTime <= to (None: unbounded), as served: the same
        dicts in the server's order (activity_order), held-back events left out, activity_answer_cap NOT applied.

        `simulator.parse_event_time` turns an EventTime into a UTC datetime.
        """
        from_s = None if from_ts is None else epoch(from_ts)
        to_s = None if to_ts is None else epoch(to_ts)
        events = [orjson.loads(event.payload) for event in self._wfm.events(from_s, to_s)]
        return events[::-1] if self._activity_order == "desc" else events

    def hold_back_activity(self, last: int | None = None, *, keys=None, agent_id: str | None = None) -> list[tuple]:
        """Hide agent-activity events from every answer until released, as if they arrived late.

        Either the `last` latest events published now (only those of `agent_id`, if given) or the events
        with these `keys`. Returns their keys, (AgentId, EventTime, Activity, ReasonCode), oldest first.
        """
        return self._wfm.hold_back(last, keys, agent_id)

    def release_activity(self, keys=None) -> list[tuple]:
        """Publish held-back events again (these `keys`, or all of them); returns the keys released, oldest first."""
        return self._wfm.release(keys)

    @property
    def held_activity(self) -> list[tuple]:
        """Keys of the events held back now, oldest first."""
        return self._wfm.held

    @property
    def activity_answer_cap(self) -> int | None:
        """None, or N: an activity answer silently holds only the earliest N events of its window."""
        return self._activity_answer_cap

    @activity_answer_cap.setter
    def activity_answer_cap(self, cap: int | None) -> None:
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ValueError("activity_answer_cap must be None or a positive integer")
        self._activity_answer_cap = cap

    @property
    def activity_order(self) -> str:
        """"asc" (by EventTime, then AgentId) or "desc" (that order reversed)."""
        return self._activity_order

    @activity_order.setter
    def activity_order(self, order: str) -> None:
        if order not in ACTIVITY_ORDERS:
            raise ValueError(f"activity_order must be one of {ACTIVITY_ORDERS}")
        self._activity_order = order

    @property
    def agents_page_cap(self) -> int | None:
        """None, or N: an agents page holds at most N agents, whatever `limit` asks."""
        return self._agents_page_cap

    @agents_page_cap.setter
    def agents_page_cap(self, cap: int | None) -> None:
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ValueError("agents_page_cap must be None or a positive integer")
        self._agents_page_cap = cap

    @property
    def queue_description_key(self) -> str:
        """"description", "Description", or "mixed" (alternating, the first queue's lower case)."""
        return self._queue_description_key

    @queue_description_key.setter
    def queue_description_key(self, key: str) -> None:
        if key not in QUEUE_DESCRIPTION_KEYS:
            raise ValueError(f"queue_description_key must be one of {QUEUE_DESCRIPTION_KEYS}")
        self._queue_description_key = key

    # ----- hostile modes ---------------------------------------------------------------------------
    # ignore_skip, endless_has_more, omit_has_more, omit_total_count, unreadable_interval_start and echo_auth_400 are
    # plain attributes; the modes below keep state (what was served, how many answers) and reset it when set.

    @property
    def redirect(self) -> tuple[int, str] | None:
        """(status, location): every call-volume request is answered that 3xx with that Location, no body."""
        return self._redirect

    @redirect.setter
    def redirect(self, redirect: tuple[int, str] | None) -> None:
        self._redirect = validate_redirect(redirect)

    @property
    def future_row(self) -> bool | datetime | None:
        """True (a row in 2070) or a datetime: the next page served carries one extra row in that interval."""
        return self._future_setting

    @future_row.setter
    def future_row(self, future_row: bool | datetime | None) -> None:
        if future_row is not None and not isinstance(future_row, (bool, datetime)):
            raise ValueError("future_row must be None, a bool or a datetime")
        start = DEFAULT_FUTURE_ROW_START if future_row is True else future_row or None
        with self._data.lock:
            self._future_setting = future_row
            self._future = None if start is None else self._data.future_row(start)
            self._future_served = False

    @property
    def future_row_id(self) -> str | None:
        """The `_id` of the future row (known as soon as the mode is set), or None when it is off."""
        with self._data.lock:
            return None if self._future is None else self._future.record_id

    @property
    def future_row_served(self) -> bool:
        with self._data.lock:
            return self._future_served

    @property
    def fabricated_ids(self) -> list[str]:
        """`_id`s of every row endless_has_more made up so far (including rows of answers cut short)."""
        with self._data.lock:
            return list(self._data.fabricated_ids)

    @property
    def contradictory_probe(self) -> bool | str:
        """True: every request without fromTimeStamp gets an empty page with hasMore true and totalCount > 0;
        "once": only the first such request (counted from when the mode was set); False: off."""
        return self._probe.mode

    @contradictory_probe.setter
    def contradictory_probe(self, mode: bool | str) -> None:
        self._probe.mode = mode

    @property
    def drip_seconds(self) -> float | None:
        return self._drip.seconds

    @drip_seconds.setter
    def drip_seconds(self, seconds: float | None) -> None:
        self._drip.configure(seconds, self._drip.first_n)

    @property
    def drip_first_n(self) -> int | None:
        return self._drip.first_n

    @drip_first_n.setter
    def drip_first_n(self, first_n: int | None) -> None:
        self._drip.configure(self._drip.seconds, first_n)

    def drip(self, seconds: float | None, first_n: int | None = None) -> None:
        """Write call-volume answers one byte at a time, `seconds` apart: the next `first_n` (None: all)."""
        self._drip.configure(seconds, first_n)

    @property
    def fail_forever_after(self) -> int | None:
        return self._fail_forever.after

    @fail_forever_after.setter
    def fail_forever_after(self, after: int | None) -> None:
        self._fail_forever.configure(after, self._fail_forever.kind)

    @property
    def fail_forever_kind(self) -> str:
        return self._fail_forever.kind

    @fail_forever_kind.setter
    def fail_forever_kind(self, kind: str) -> None:
        self._fail_forever.configure(self._fail_forever.after, kind)

    def fail_forever(self, after: int | None, kind: str = "not_json") -> None:
        """After `after` more successful call-volume answers, fail every valid request as `kind` for good."""
        self._fail_forever.configure(after, kind)

    # ----- rate limit ------------------------------------------------------------------------------

    @property
    def budget(self) -> RateLimit:
        """The rate limit itself (its `clock` can be replaced in tests, `reset()` forgets its windows)."""
        return self._budget

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self._budget.per_minute

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, per_minute: int | None) -> None:
        self._budget.per_minute = per_minute

    @property
    def rate_limit_retry_after(self) -> int | str | None:
        return self._budget.retry_after

    @rate_limit_retry_after.setter
    def rate_limit_retry_after(self, retry_after: int | str | None) -> None:
        self._budget.retry_after = retry_after

    @property
    def count_refused(self) -> bool:
        return self._budget.count_refused

    @count_refused.setter
    def count_refused(self, count_refused: bool) -> None:
        self._budget.count_refused = count_refused

    @property
    def received_per_account(self) -> dict[str, int]:
        """Requests received per account id named in the path, limit on or off, whatever their answer."""
        return dict(self._budget.received)

    @property
    def rate_limited_per_account(self) -> dict[str, int]:
        """429s the rate limit sent, per account (fail_next and Faults 429s are not counted here)."""
        return dict(self._budget.refused)

    @property
    def rate_limited_count(self) -> int:
        return sum(self._budget.refused.values())

    def window_usage(self, account_id: str | None = None) -> int:
        """Requests of the account (default: this simulator's) the rolling window counts right now."""
        return self._budget.in_window(account_id or self.account_id)

    def neighbour(self, every: float = 10.0, **options) -> Neighbour:
        """A second client of this account polling every `every` seconds (not started: use it in `with`).

        It polls the hour before the horizon unless `until=` says otherwise; the simulator must be running.
        """
        if self.url is None:
            raise RuntimeError("start the simulator before making its neighbour: it needs the URL")
        options.setdefault("until", lambda: self.horizon)
        return Neighbour(
            self.url, account_id=self.account_id, org_id=self.org_id, token=self.token, every=every, **options
        )

    # ----- request handling ------------------------------------------------------------------------

    def _respond(self, request: Request) -> Reply:
        """Answer one request and log it. What decides the answer, first match wins:

        1. the rate limit (any path naming an account, every request counted) -> 429;
        2. anything but POST to the call-volume path or GET to queues, agents or agentactivity -> 404;
        3. call volume only: redirect -> 3xx, then echo_auth_400 -> 400 (both before the token is checked);
        4. token (401), scope (403), account (404), body or query parameters (400);
        5. call volume only: fail-forever once tripped; then, every endpoint, a forced or random fault;
        6. call volume only: the contradictory probe (no fromTimeStamp); else the answer.
        Any call-volume answer that is written (not reset or hung) may then be dripped.
        """
        if self.latency:
            time.sleep(self.latency)
        path, params = split_target(request.raw_path)
        auth = request.headers.get("auth")
        body = None
        if request.body:
            try:
                body = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                body = None
        account = account_in_path(path)
        endpoint = endpoint_in_path(path)
        served = endpoint is not None and request.method == ENDPOINT_METHODS[endpoint]
        verdict = self._budget.admit(account) if account is not None else None
        if verdict is not None and not verdict.admitted:
            headers = () if verdict.retry_after is None else (("Retry-After", str(verdict.retry_after)),)
            reply, answer = error_reply(429, RATE_LIMIT_MESSAGE, headers), "rate_limited"
        elif not served:
            reply, answer = error_reply(404, "Not Found"), "error"
        elif endpoint == "callvolume":
            reply, answer = self._answer_callvolume(account, auth, body if isinstance(body, dict) else None)
        else:
            reply, answer = self._answer_wfm(endpoint, account, auth, params)
        if served and endpoint == "callvolume" and reply.action is None:
            reply.drip_seconds = self._drip.take()
        entry = {
            "method": request.method,
            "path": path,
            "query": {name: values[0] if len(values) == 1 else values for name, values in params.items()},
            "endpoint": endpoint,
            "account_id": account,
            "body": body,
            "auth": auth,
            "has_auth": auth is not None,
            "claims": unverified_claims(auth),
            "content_type": request.headers.get("content-type"),
            "user_agent": request.headers.get("user-agent"),
            "headers": request.headers,
            "received_at": request.received_at,
            "status": 0 if reply.action else reply.status,
            "rate_limited": answer == "rate_limited",
            "answer": answer,
            "dripped": reply.drip_seconds > 0,
        }
        with self._log_lock:
            self._request_log.append(entry)
        return reply

    def _refusal(self, account: str, auth: str | None) -> tuple[Reply, str] | None:
        """The 401, 403 or 404 every endpoint answers a bad token, a missing scope or another account."""
        problem = authentication_problem(
            auth, client_id=self.client_id, client_secret=self.client_secret,
            jtis=self._jtis if self.enforce_jti else None,
        )
        if problem:
            return error_reply(401, problem), "error"
        if not self.scope_granted:
            return error_reply(403, "Scope WFM Integration not granted"), "error"
        if account != self.account_id:
            return error_reply(404, "Account not found"), "error"
        return None

    def _answer_callvolume(self, account: str, auth: str | None, body: dict | None) -> tuple[Reply, str]:
        # A redirecting or token-echoing front answers before anything checks the token.
        if self._redirect is not None:
            return redirect_reply(*self._redirect), "redirect"
        if self.echo_auth_400:
            return echo_auth_reply(auth), "echo_auth"
        refusal = self._refusal(account, auth)
        if refusal is not None:
            return refusal
        try:
            query = parse_query(body, self.org_id, self.default_limit)
        except BadRequest as problem:
            return error_reply(400, str(problem)), "error"
        if self._fail_forever.tripped:
            return self._fail_forever.reply(self._serve_page(query, page_delivered=False)), "fail_forever"
        fault = self._faults.draw()
        if fault is not None and fault.kind == "truncated":
            full = self._serve_page(query, page_delivered=False)
            return Reply(200, full[: len(full) // 2]), "fault"
        if fault is not None:
            return fault_reply(fault), "fault"
        self._fail_forever.record_success()
        if query.from_s is None and self._probe.take():
            return Reply(200, self._contradictory_probe_page(query)), "contradictory_probe"
        return Reply(200, self._serve_page(query, page_delivered=True)), "page"

    def _answer_wfm(self, endpoint: str, account: str, auth: str | None, params: dict) -> tuple[Reply, str]:
        """Queues, agents or agent activity: the shared refusals, the query's 400, a fault, else the answer."""
        refusal = self._refusal(account, auth)
        if refusal is not None:
            return refusal
        try:
            answer = self._wfm_answer(endpoint, params)
        except BadRequest as problem:
            return error_reply(400, str(problem)), "error"
        fault = self._faults.draw()
        if fault is not None and fault.kind == "truncated":
            full = answer()
            return Reply(200, full[: len(full) // 2]), "fault"
        if fault is not None:
            return fault_reply(fault), "fault"
        return Reply(200, answer()), "page"

    def _wfm_answer(self, endpoint: str, params: dict) -> Callable[[], bytes]:
        """What answers a valid request, written only once no fault is drawn; BadRequest for a bad query."""
        if endpoint == "agents":
            offset, limit = parse_agents_query(params)
            if self._agents_page_cap is not None:
                limit = min(limit, self._agents_page_cap)
            return partial(self._wfm.agents_page, 0 if self.ignore_offset else offset, limit)
        if endpoint == "agentactivity":
            from_s, to_s = parse_activity_query(params)
            return lambda: self._wfm.activity_body(
                self._wfm.events(from_s, to_s), self._activity_order, self._activity_answer_cap
            )
        return lambda: orjson.dumps(self._wfm.queue_records(self._queue_description_key))

    def _contradictory_probe_page(self, query: Query) -> bytes:
        """No rows, yet more to come and a positive total: the answer contradicts itself."""
        total = max(1, len(self._data.window(None, query.to_s)))
        return page_body([], has_more=True, total_count=total)

    def _serve_page(self, query: Query, page_delivered: bool) -> bytes:
        """The page answering `query`, shaped by the page-level hostile modes.

        ignore_skip serves rows from offset 0 whatever skip says; endless_has_more fills every page past the
        real rows with fabricated ones; both keep hasMore true. The future row rides on the first page
        delivered after it is set, counted in totalCount. omit_* leave a field out; unreadable_interval_start sends
        every row's intervalStartTimeStamp as null.
        """
        page_size = query.limit if self.page_cap is None else min(query.limit, self.page_cap)
        data = self._data
        with data.lock:
            window = data.window(query.from_s, query.to_s)
            skip = 0 if self.ignore_skip else query.skip
            page = window[skip: skip + page_size]
            offset = skip + len(page)
            more_rows = offset < len(window)
            payloads = [row.payload for row in page]
            total = len(window)
            if self.endless_has_more and len(payloads) < page_size:
                payloads += [
                    data.fabricate(query.from_s, query.to_s).payload for _ in range(page_size - len(payloads))
                ]
            if page_delivered and self._future is not None and not self._future_served:
                payloads.append(self._future.payload)
                total += 1
                self._future_served = True
            if self.unreadable_interval_start:
                payloads = [orjson.dumps({**orjson.loads(payload), "intervalStartTimeStamp": None}) for payload in payloads]
            has_more = more_rows or self.ignore_skip or self.endless_has_more
            body = page_body(
                payloads,
                None if self.omit_has_more else has_more,
                None if self.omit_total_count else total,
            )
            if more_rows and page_delivered:
                data.after_page_with_more(window, query.from_text, query.to_text, offset)
        return body
