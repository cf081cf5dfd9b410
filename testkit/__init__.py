"""Test support in one place: the builders and constants that unit tests, integration tests and the benchmark share.

- catalogs: `configured_catalog()`, the one definition of a configured catalog for the connector's stream;
- HttpMocker builders: `config()`, `record()`, `page()`, `window_request()`;
- time: `utc()`, through the connector's own time helpers;
- tokens: `sign()`, the connector's own signing, for tests that paste a token.

It imports the connector's components, never a test module: test modules import from here, not from each other.
"""

import json
from typing import Any, Iterable, List, Mapping, Optional

from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse

from source_callvolume.components import format_utc, parse_utc, sign_token

STREAM = "call_volume"
CURSOR_FIELD = "intervalEndTimeStamp"
PRIMARY_KEY = "_id"

# --- Catalogs -----------------------------------------------------------------------------------------


#: Each stream's primary key and cursor (None: full refresh only), as the manifest declares them.
STREAMS = {
    "call_volume": ([["_id"]], "intervalEndTimeStamp"),
    "queues": ([["collectionPointId"]], None),
    "agents": ([["agentId"]], None),
    "agent_activity": ([["AgentId"], ["EventTime"], ["Activity"], ["ReasonCode"]], "EventTimeUtc"),
}


def configured_catalog(sync_mode: str = "incremental", streams: Iterable[str] = (STREAM,)) -> dict:
    """The configured catalog of a sync, as Airbyte hands it to the connector: `incremental` where a stream has a
    cursor, full refresh where it has none."""
    configured = []
    for name in streams:
        primary_key, cursor = STREAMS[name]
        mode = sync_mode if cursor else "full_refresh"
        configured.append(
            {
                "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"] if cursor else ["full_refresh"]},
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
                "primary_key": primary_key,
                **({"cursor_field": [cursor]} if cursor else {}),
            }
        )
    return {"streams": configured}


def stream_state(cursor: str) -> List[dict]:
    """A state file holding `call_volume`'s cursor, as the connector emits it."""
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": STREAM}, "stream_state": {CURSOR_FIELD: cursor}}}]


# --- Time and tokens ----------------------------------------------------------------------------------


def utc(text: str) -> Any:
    moment = parse_utc(text)
    assert moment is not None, f"not a UTC time: {text!r}"
    return moment


def sign(client_id: str, secret: str, issued_at: Optional[int] = None) -> str:
    return sign_token(client_id, secret, issued_at)


# --- HttpMocker builders ------------------------------------------------------------------------------

ACCOUNT_ID = "acc-0001"
ORG_ID = "o-01aedac2-26fb-5bdb-bb0f-f71292ca0001"
CLIENT_ID = "0123"  # looks numeric: must still be sent as the string "0123"
CLIENT_SECRET = "a-client-secret-that-is-long-enough-for-hs256"
URL = f"https://platform.kore.ai/agentassist/api/public/analytics/account/{ACCOUNT_ID}/callvolume"
START = "2024-03-01T00:00:00Z"
END = "2024-03-02T00:00:00Z"
PAGE_SIZE = 3


def config(**overrides: Any) -> dict:
    """A config for the HttpMocker tests: one window (24 h), pages of 3, one worker, a budget that never waits
    (under HttpMocker the backoff sleeps are skipped, so a retried request comes back at once)."""
    base = {
        "host": "platform.kore.ai",
        "account_id": ACCOUNT_ID,
        "org_id": ORG_ID,
        "credentials": {"auth_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        "start_date": START,
        "end_date": END,
        "page_size": PAGE_SIZE,
        "window_hours": 24,
        "num_workers": 1,
        "requests_per_minute": 100000,
    }
    return {**base, **overrides}


def record(index: int, end: str = "2024-03-01T10:00:00.000Z") -> dict:
    """One queue's interval ending at `end`, with an `_id` made from `index`."""
    start = format_utc(utc(end).subtract(minutes=15)).replace("Z", ".000Z")
    return {"_id": f"{index:024x}", "intervalStartTimeStamp": start, "intervalEndTimeStamp": end, "queueId": "qu-1", "offeredContacts": index}


def page(records: Iterable[Mapping[str, Any]], has_more: Optional[bool], total: Optional[int] = None, **fields: Any) -> HttpResponse:
    """A 200 page; `has_more=None` or `total=-1` leave that field out."""
    rows = list(records)
    body: dict = {"CallVolumeUpdate": rows, **fields}
    if has_more is not None:
        body["hasMore"] = has_more
    if total != -1:
        body["totalCount"] = len(rows) if total is None else total
    return HttpResponse(body=json.dumps(body), status_code=200)


def window_body(skip: int = 0, start: str = START, end: str = END, limit: int = PAGE_SIZE) -> dict:
    return {"orgId": ORG_ID, "fromTimeStamp": start, "toTimeStamp": end, "limit": limit, "skip": skip}


def window_request(**body: Any) -> HttpRequest:
    """The request for one page of one window."""
    return HttpRequest(url=URL, body=window_body(**body))


# --- HttpMocker builders of the other WFM endpoints ---------------------------------------------------

ACCOUNT_URL = f"https://platform.kore.ai/agentassist/api/public/analytics/account/{ACCOUNT_ID}"


def endpoint_request(name: str, **query: Any) -> HttpRequest:
    """A GET of `queues`, `agents` or `agentactivity`, with its query parameters."""
    return HttpRequest(url=f"{ACCOUNT_URL}/{name}", query_params={key: str(value) for key, value in query.items()} or None)


def array(items: Iterable[Mapping[str, Any]]) -> HttpResponse:
    """A 200 whose body is a bare JSON array, as queues and agents answer."""
    return HttpResponse(body=json.dumps(list(items)), status_code=200)


def agent(index: int) -> dict:
    return {"accountId": ACCOUNT_ID, "agentId": f"a-{index:04d}", "firstName": f"First{index}", "lastName": f"Last{index}"}


def event(agent_index: int, event_time: str, activity: str = "ready", reason: str = "1") -> dict:
    return {"AgentId": f"a-{agent_index:04d}", "EventTime": event_time, "Activity": activity, "ReasonCode": reason}


def activity(events: Iterable[Mapping[str, Any]]) -> HttpResponse:
    return HttpResponse(body=json.dumps({"accountId": ACCOUNT_ID, "AgentUpdates": list(events)}), status_code=200)
