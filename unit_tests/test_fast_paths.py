"""Pins that the shortcuts of fast_paths.py give exactly what the CDK's own code gives, errors included."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
from airbyte_cdk.sources.types import StreamSlice

from source_callvolume import fast_paths

API_FORMAT = fast_paths.API_TIMESTAMP_FORMAT
TIMESTAMPS = [
    "2024-06-01T09:45:00.000Z",
    "2024-02-29T23:45:00.999Z",
    "1999-12-31T00:00:00.000Z",
    "2024-02-30T00:00:00.000Z",  # impossible: must raise as strptime does
    "2024-06-01T09:45:00Z",  # no fraction: not the shortcut's shape
    "2024-06-01T09:45:00.000000Z",
    "2024-06-01 09:45:00.000Z",
    "2024-06-01T09:45:00.000+00:00",
    "garbage",
]


def _cdk_parse(value: str) -> datetime:
    """What DatetimeParser.parse does for this format: strptime, then UTC for a naive result."""
    return datetime.strptime(value, API_FORMAT).replace(tzinfo=timezone.utc)


def _outcome(parse, value: str):  # type: ignore[no-untyped-def]
    try:
        return parse(value)
    except ValueError:
        return ValueError


@pytest.mark.parametrize("value", TIMESTAMPS)
def test_timestamp_shortcut_parses_as_the_cdk_does(value: str) -> None:
    fallback_calls = []

    def cdk_parse(self, date, format):  # type: ignore[no-untyped-def]
        fallback_calls.append(date)
        return _cdk_parse(date)

    shortcut = fast_paths._with_api_timestamp_shortcut(cdk_parse)

    assert _outcome(lambda text: shortcut(DatetimeParser(), text, API_FORMAT), value) == _outcome(_cdk_parse, value)


def test_window_hash_is_computed_once_and_equals_the_cdks() -> None:
    calls = []

    def cdk_hash(window: StreamSlice) -> int:
        calls.append(window)
        return hash(str(window))

    hash_once = fast_paths._computed_once(cdk_hash)
    window = StreamSlice(partition={}, cursor_slice={"start_time": "2024-06-01T00:00:00Z", "end_time": "2024-06-02T00:00:00Z"})

    assert hash_once(window) == hash_once(window) == cdk_hash(window)
    assert len(calls) == 2  # once through hash_once, once direct
