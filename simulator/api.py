"""The call-volume endpoint's formats, as Kore.ai's public reference describes them, and the routes of all four.

The paths of the four WFM endpoints (``POST .../callvolume``; ``GET .../queues``, ``.../agents`` and
``.../agentactivity``) and how an account id, an endpoint and the query parameters are read from a request
line; the call-volume JSON request body and its validation (a `BadRequest` becomes a 400), the page body
``{"hasMore": bool, "CallVolumeUpdate": [...], "totalCount": int}``, and Kore.ai's error shape
``{"errors": [{"msg": "..."}]}``. The other three endpoints' formats live in `simulator.wfm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson

from simulator.data import parse_timestamp
from simulator.transport import Reply

CALLVOLUME_PATH = re.compile(r"/agentassist/api/public/analytics/account/([^/]+)/callvolume")
# Any endpoint of one account (callvolume and the other WFM APIs): what the rate limit is keyed by.
ACCOUNT_PATH = re.compile(r"/agentassist/api/public/analytics/account/([^/]+)(?:/.*)?")
ENDPOINT_PATH = re.compile(
    r"/agentassist/api/public/analytics/account/([^/]+)/(callvolume|queues|agents|agentactivity)"
)
# The one method each endpoint answers; any other is a 404, like an unknown path.
ENDPOINT_METHODS = {"callvolume": "POST", "queues": "GET", "agents": "GET", "agentactivity": "GET"}
MAX_LIMIT = 10_000


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class Query:
    from_s: float | None
    to_s: float
    skip: int
    limit: int
    from_text: str | None
    to_text: str


def account_in_path(path: str) -> str | None:
    match = ACCOUNT_PATH.fullmatch(path)
    return match.group(1) if match else None


def endpoint_in_path(path: str) -> str | None:
    """ "callvolume", "queues", "agents" or "agentactivity" when `path` is one of the four, else None."""
    match = ENDPOINT_PATH.fullmatch(path)
    return match.group(2) if match else None


def split_target(raw_path: str) -> tuple[str, dict[str, list[str]]]:
    """The path and the query parameters (percent-decoded, ``+`` read as a space, blank values kept)."""
    path, _, query = raw_path.partition("?")
    return path, parse_qs(query, keep_blank_values=True)


def parse_query(body: dict | None, org_id: str, default_limit: int) -> Query:
    if body is None:
        raise BadRequest("Request body must be a JSON object")
    if "orgId" not in body or body["orgId"] is None:
        raise BadRequest("orgId is required")
    if body["orgId"] != org_id:
        raise BadRequest("orgId does not match the account")
    from_text = body.get("fromTimeStamp")
    to_text = body.get("toTimeStamp")
    if to_text is None:
        raise BadRequest("toTimeStamp is required")
    to_s = parse_timestamp(to_text)
    if to_s is None:
        raise BadRequest("toTimeStamp is not an ISO 8601 UTC timestamp")
    from_s = None
    if from_text is not None:
        from_s = parse_timestamp(from_text)
        if from_s is None:
            raise BadRequest("fromTimeStamp is not an ISO 8601 UTC timestamp")
        if from_s > to_s:
            raise BadRequest("fromTimeStamp is after toTimeStamp")
    skip = body.get("skip")
    skip = 0 if skip is None else skip
    if not _is_int(skip) or skip < 0:
        raise BadRequest("skip must be a non-negative integer")
    limit = body.get("limit")
    limit = default_limit if limit is None else limit
    if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return Query(from_s, to_s, skip, limit, from_text, to_text)


def page_body(payloads: list[bytes], has_more: bool | None, total_count: int | None) -> bytes:
    """A page from pre-serialised rows; a None field is left out of the answer altogether."""
    parts = [b"{"]
    if has_more is not None:
        parts += [b'"hasMore":', b"true" if has_more else b"false", b","]
    parts += [b'"CallVolumeUpdate":[', b",".join(payloads), b"]"]
    if total_count is not None:
        parts += [b',"totalCount":', str(total_count).encode()]
    parts.append(b"}")
    return b"".join(parts)


def error_body(message: str) -> bytes:
    return orjson.dumps({"errors": [{"msg": message}]})


def error_reply(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, error_body(message), headers=headers)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
