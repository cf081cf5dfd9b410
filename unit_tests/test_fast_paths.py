"""Pins that the shortcuts of fast_paths.py give exactly what the CDK's own code gives, errors included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
from airbyte_cdk.sources.declarative.extractors.record_selector import RecordSelector
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.sources.utils.transform import TransformConfig, TypeTransformer

from source_callvolume import fast_paths

API_FORMAT = fast_paths.API_TIMESTAMP_FORMAT
SCHEMA = {"type": "object", "properties": {"_id": {"type": "string"}, "offeredContacts": {"type": "integer"}}}
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

    # Twice: the second answer may come from the table of recent timestamps, and must be the same.
    for _ in range(2):
        assert _outcome(lambda text: shortcut(DatetimeParser(), text, API_FORMAT), value) == _outcome(_cdk_parse, value)


def test_timestamp_shortcut_stays_right_when_its_table_of_recent_values_fills_up() -> None:
    shortcut = fast_paths._with_api_timestamp_shortcut(lambda self, date, format: _cdk_parse(date))
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    moments = [start + timedelta(minutes=15 * n) for n in range(fast_paths._RECENT_TIMESTAMPS + 10)]

    for moment in moments + moments[:20]:
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert shortcut(DatetimeParser(), text, API_FORMAT) == moment


def _selector(config: TransformConfig) -> SimpleNamespace:
    return SimpleNamespace(schema_normalization=TypeTransformer(config))


def test_normalisation_without_a_transform_passes_the_records_on_as_they_are() -> None:
    # The CDK copies each record into a new dict for a transformer that returns at once: same keys, same values.
    records = [{"_id": "a", "offeredContacts": "12"}]
    normalize = fast_paths._without_copies_for_no_transform(RecordSelector._normalize_by_schema)
    selector = _selector(TransformConfig.NoTransform)

    passed_on = list(normalize(selector, iter(records), SCHEMA))

    assert passed_on == list(RecordSelector._normalize_by_schema(selector, iter(records), SCHEMA)) == records
    assert passed_on[0] is records[0]


def test_normalisation_with_a_transform_is_still_the_cdks() -> None:
    normalize = fast_paths._without_copies_for_no_transform(RecordSelector._normalize_by_schema)
    selector = _selector(TransformConfig.DefaultSchemaNormalization)

    assert list(normalize(selector, iter([{"_id": "a", "offeredContacts": "12"}]), SCHEMA)) == [{"_id": "a", "offeredContacts": 12}]


def test_window_hash_is_computed_once_and_equals_the_cdks() -> None:
    calls = []

    def cdk_hash(window: StreamSlice) -> int:
        calls.append(window)
        return hash(str(window))

    hash_once = fast_paths._computed_once(cdk_hash)
    window = StreamSlice(partition={}, cursor_slice={"start_time": "2024-06-01T00:00:00Z", "end_time": "2024-06-02T00:00:00Z"})

    assert hash_once(window) == hash_once(window) == cdk_hash(window)
    assert len(calls) == 2  # once through hash_once, once direct
