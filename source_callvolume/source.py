"""The source: the declarative manifest plus what must happen before any stream runs.

- The config is normalised (host given as `platform.kore.ai`, with `https://` or a trailing `/`; stray
  blanks; a start date off the quarter hour) and checked field by field, so that a bad value is refused with a
  message naming the field before any request is made.
- A first sync without a start date begins at the first day that holds any interval, found by a binary
  search on `toTimeStamp` with `fromTimeStamp` left out, instead of crawling decades of empty windows.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import urlsplit

from airbyte_cdk.models import AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    HttpRequester as HttpRequesterModel,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.sources.types import StreamSlice

from source_callvolume.components import RECORDS_FIELD, parsed_page

MANIFEST_PATH = str(Path(__file__).with_name("manifest.yaml"))
STREAM_NAME = "call_volume"
CURSOR_FIELD = "intervalEndTimeStamp"
DEFAULT_HOST = "https://platform.kore.ai"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# What a state's cursor may hold: the connector's own format, or the API's, with milliseconds.
CURSOR_FORMATS = (TIMESTAMP_FORMAT, "%Y-%m-%dT%H:%M:%S.%fZ")
INTERVAL = timedelta(minutes=15)
# Far enough back for any contact centre's history; the search needs a lower bound to stop at.
EARLIEST_SEARCHED_DAY = datetime(2000, 1, 1, tzinfo=timezone.utc)
LOOPBACK_HOSTS = {"localhost"}

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_ORG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_INTEGER_KNOBS = {
    # field: (minimum, maximum, multiple of)
    "lookback_minutes": (15, 10080, 15),
    "page_size": (1, 10000, 1),
    "window_hours": (1, 744, 1),
    "num_workers": (1, 32, 1),
}


class SourceCallvolume(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        **_: Any,
    ) -> None:
        self._has_state = bool(state)
        super().__init__(
            path_to_yaml=MANIFEST_PATH,
            catalog=catalog,
            config=normalize_config(config) if config else config,
            state=state,
        )

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        if not self._config.get("start_date") and not self._has_state:
            self._config = {**self._config, "start_date": self._first_day_with_data(logger)}
        yield from super().read(logger, self._config, catalog, state)

    def _first_day_with_data(self, logger: logging.Logger) -> str:
        requester = self._constructor.create_component(
            HttpRequesterModel,
            self.resolved_manifest["definitions"]["requester"],
            {**self._config, "page_size": 1},
            name=STREAM_NAME,
        )

        def has_rows_before(moment: datetime) -> bool:
            # The window's end is one cursor granularity (1s) before `toTimeStamp`, as in every window.
            window = StreamSlice(
                partition={},
                cursor_slice={"start_time": "", "end_time": _format(moment - timedelta(seconds=1))},
            )
            response = requester.send_request(stream_slice=window)
            page = parsed_page(response) if response is not None else None
            return bool(page and page[RECORDS_FIELD])

        first_day = first_day_with_rows(has_rows_before, datetime.now(timezone.utc))
        if first_day is None:
            first_day = _floor_to_interval(datetime.now(timezone.utc))
            logger.info("No start_date and the account has no call volume yet: reading from now on.")
        else:
            logger.info(f"No start_date: the account's first interval is on {first_day:%Y-%m-%d}; reading from there.")
        return _format(first_day)


def first_day_with_rows(has_rows_before: Callable[[datetime], bool], now: datetime) -> Optional[datetime]:
    """The last midnight before which there are no rows, or None when there are none at all.

    `has_rows_before(t)` says whether any interval lies before `t`; it is monotonic in `t`, so a doubling
    search backwards then a bisection finds the edge in about 2·log2(days) requests.
    """
    day = timedelta(days=1)
    with_rows = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + day
    if not has_rows_before(with_rows):
        return None
    step = day
    without_rows = EARLIEST_SEARCHED_DAY
    while with_rows - step > EARLIEST_SEARCHED_DAY:
        candidate = with_rows - step
        if not has_rows_before(candidate):
            without_rows = candidate
            break
        with_rows = candidate
        step *= 2
    while with_rows - without_rows > day:
        middle = without_rows + ((with_rows - without_rows) // day // 2) * day
        if has_rows_before(middle):
            with_rows = middle
        else:
            without_rows = middle
    return without_rows


def normalize_config(config: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """The config as the manifest expects it: blanks trimmed, host with its scheme, start on a quarter hour."""
    normalized = {key: _strip(value) for key, value in config.items()}
    host = normalized.get("host") or DEFAULT_HOST
    if isinstance(host, str):
        if "://" not in host:
            host = f"https://{host}"
        normalized["host"] = host.rstrip("/")
    start = _parse(normalized.get("start_date"))
    if start is not None:
        normalized["start_date"] = _format(_floor_to_interval(start))
    return normalized


def config_problems(config: Mapping[str, Any]) -> List[str]:
    """Every problem of the config, each naming the field and the fix; an empty list when it is usable."""
    problems: List[str] = []
    problems += _host_problems(config.get("host", DEFAULT_HOST))
    account_id = config.get("account_id")
    if not isinstance(account_id, str) or not account_id.strip():
        problems.append("`account_id` is missing: give the AgentAssist account ID.")
    elif not _ACCOUNT_ID.match(account_id.strip()):
        problems.append(
            "`account_id` may hold only letters, digits, '-' and '_' (no '/', '?', '..' or spaces): "
            "give the bare AgentAssist account ID, not a URL."
        )
    org_id = config.get("org_id")
    if not isinstance(org_id, str) or not org_id.strip():
        problems.append("`org_id` is missing: give the organisation ID (it starts with \"o-\").")
    elif not _ORG_ID.match(org_id.strip()):
        problems.append("`org_id` may hold only letters, digits, '-' and '_', e.g. o-01aedac2-26fb-5bdb-bb0f-f71292ca0001.")
    problems += _credentials_problems(config.get("credentials"))
    start = _date_problem(config, "start_date", problems)
    end = _date_problem(config, "end_date", problems)
    if start and end and end <= start:
        problems.append("`end_date` must be after `start_date`: swap them or leave `end_date` empty to read up to now.")
    for name, (minimum, maximum, multiple) in _INTEGER_KNOBS.items():
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum or value % multiple:
            every = f" in steps of {multiple}" if multiple > 1 else ""
            problems.append(f"`{name}` must be a whole number from {minimum} to {maximum}{every}; it is {value!r}.")
    return problems


def state_problems(state: Any) -> List[str]:
    """Problems of a state file's cursor for this stream, each naming the value and the fix."""
    messages = state if isinstance(state, list) else []
    problems = []
    for message in messages:
        stream = message.get("stream") if isinstance(message, Mapping) else None
        if not isinstance(stream, Mapping) or stream.get("stream_descriptor", {}).get("name") != STREAM_NAME:
            continue
        cursor = (stream.get("stream_state") or {}).get(CURSOR_FIELD)
        if cursor is not None and _parse(cursor, CURSOR_FORMATS) is None:
            problems.append(
                f"The state's {CURSOR_FIELD} is {cursor!r}, not a UTC time like 2024-03-01T10:15:00Z: "
                "fix the state file, or reset the stream to sync from `start_date` again."
            )
    return problems


def _host_problems(host: Any) -> List[str]:
    if not isinstance(host, str) or not host.strip():
        return ["`host` is empty: give the Kore.ai environment, e.g. platform.kore.ai."]
    text = host.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    hostname = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not (_is_loopback(hostname) or _HOST_NAME.match(hostname)):
        return [f"`host` must be a host name such as platform.kore.ai (optionally with https://); {text!r} is not."]
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        return ["`host` must be the environment's host only, e.g. platform.kore.ai, without a path or query."]
    if parts.scheme == "http" and not _is_loopback(hostname):
        return ["`host` uses plain http://, which would send the token unencrypted: use https://."]
    return []


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _credentials_problems(credentials: Any) -> List[str]:
    if not isinstance(credentials, Mapping):
        return ["`credentials` is missing: give the JWT app's Client ID and Client Secret, or paste a JWT."]
    auth_type = credentials.get("auth_type")
    if auth_type == "client_credentials":
        return [
            f"`credentials.{name}` is empty: copy the JWT app's {label} from Kore.ai."
            for name, label in (("client_id", "Client ID"), ("client_secret", "Client Secret"))
            if not isinstance(credentials.get(name), str) or not credentials[name].strip()
        ]
    if auth_type == "jwt":
        token = credentials.get("jwt")
        if not isinstance(token, str) or not _JWT.match(token.strip()):
            return ["`credentials.jwt` is not a JWT (three dot-separated parts): paste the whole token."]
        return []
    return ["`credentials.auth_type` must be \"client_credentials\" or \"jwt\"."]


def _date_problem(config: Mapping[str, Any], name: str, problems: List[str]) -> Optional[datetime]:
    value = config.get(name)
    if value is None or value == "":
        return None
    parsed = _parse(value.strip() if isinstance(value, str) else value)
    if parsed is None:
        problems.append(f"`{name}` must be a real UTC time written YYYY-MM-DDTHH:MM:SSZ, e.g. 2024-01-01T00:00:00Z; it is {value!r}.")
    return parsed


def _parse(value: Any, formats: Tuple[str, ...] = (TIMESTAMP_FORMAT,)) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    for timestamp_format in formats:
        try:
            return datetime.strptime(value, timestamp_format).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _format(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)


def _floor_to_interval(moment: datetime) -> datetime:
    return moment - (moment - datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)) % INTERVAL


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping):
        return {key: _strip(inner) for key, inner in value.items()}
    return value
