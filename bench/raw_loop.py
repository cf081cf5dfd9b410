"""The yardstick: the simplest correct client of the call-volume API, writing what the connector writes.

    python -m bench.raw_loop CONFIG_JSON

One `requests.Session`, one request at a time, over the connector's daily windows (each `toTimeStamp` is the
next window's `fromTimeStamp`, the last is `end_date`), signing a fresh JWT for every request as the connector
does, paging with skip/limit until `hasMore` is false, and writing one Airbyte RECORD line per row to stdout.
No validation, retries, state or threads: the per-row work any client has to do, and nothing more.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import orjson
import requests

STREAM = "call_volume"
WINDOW = timedelta(days=1)
TOKEN_LIFETIME_SECONDS = 600
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_PAGE_SIZE = 1000  # the connector's default


def _timestamp(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def _token(client_id: str, client_secret: str) -> str:
    issued_at = int(time.time())
    claims = {"appId": client_id, "iat": issued_at, "exp": issued_at + TOKEN_LIFETIME_SECONDS, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, client_secret, algorithm="HS256")


def main(config_path: str) -> int:
    with open(config_path, "rb") as file:
        config = orjson.loads(file.read())
    url = f"{config['host']}/agentassist/api/public/analytics/account/{config['account_id']}/callvolume"
    credentials = config["credentials"]
    page_size = config.get("page_size", DEFAULT_PAGE_SIZE)
    end = _timestamp(config["end_date"])
    out = sys.stdout.buffer
    session = requests.Session()
    window_start = _timestamp(config["start_date"])
    while window_start < end:
        window_end = min(window_start + WINDOW, end)
        skip, has_more = 0, True
        while has_more:
            body = {
                "orgId": config["org_id"],
                "fromTimeStamp": window_start.strftime(TIMESTAMP_FORMAT),
                "toTimeStamp": window_end.strftime(TIMESTAMP_FORMAT),
                "skip": skip,
                "limit": page_size,
            }
            headers = {
                "auth": _token(credentials["client_id"], credentials["client_secret"]),
                "Content-Type": "application/json",
            }
            response = session.post(url, data=orjson.dumps(body), headers=headers, timeout=300)
            response.raise_for_status()
            page = orjson.loads(response.content)
            rows = page["CallVolumeUpdate"]
            for row in rows:
                message = {"type": "RECORD", "record": {"stream": STREAM, "data": row, "emitted_at": int(time.time() * 1000)}}
                out.write(orjson.dumps(message) + b"\n")
            skip += len(rows)
            has_more = page["hasMore"] and bool(rows)
        window_start = window_end
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
