"""Shortcuts past costs of airbyte-cdk 7.39.1 and requests that no manifest option or component can reach.

`install()` runs first thing in run.py, before anything imports airbyte_cdk (see 3), and only there: the
record blocks of 7 suit a caller that writes what the entrypoint yields to a stream, not the CDK's in-process
test harness. Each shortcut takes only inputs it handles exactly as the CDK does and passes everything else to
the CDK's own code, so records, state, errors and validation stay the CDK's. Together they take the full
refresh that `python -m bench` measures from 11.5x the raw loop's wall time to 2.3x (README, Performance).
They belong upstream (airbyte-python-cdk, serpyco-rs, requests); drop each one when the pinned versions have
it. On any other CDK version nothing is patched.

Per record:
1. Cursor timestamps. The concurrent cursor parses `intervalEndTimeStamp` with `datetime.strptime` (~9 µs).
   The API writes one shape, `2024-06-01T09:45:00.000Z`, which `datetime.fromisoformat` turns into the same
   aware UTC datetime in 0.2 µs; and as every queue shares each interval's end, most values were parsed a
   moment ago and come from a small table of recent ones.
2. Window hashes. The cursor looks up the record's window in a dict, and `StreamSlice.__hash__` JSON-encodes
   and SHA-256-hashes the window each time (~5 µs). A StreamSlice is immutable (its `__setitem__` raises),
   so its first hash serves for good.
4. Mapping checks. `DeclarativePartition.read` asks `isinstance(record, typing.Mapping)`, which goes through
   typing's generic-alias machinery (~1 µs) to ask `collections.abc.Mapping`; it now asks the latter directly.
5. Schema normalisation. With no `schema_normalization` in the manifest (TransformConfig.NoTransform), the
   record selector still copies every record into a new dict for a transformer that returns at once; the
   record now goes on as it is, the same keys and values.
7. The hand-off between threads, and the writing of records, in blocks: record_blocks.py (~15 µs).

Per command or request:
3. Start-up. Building its protocol serializers, serpyco-rs re-parses the source of every protocol class to
   collect attribute docstrings for JSON schemas the connector never asks for: ~0.7 s of every command.
6. Response bodies. requests reads a body in 10 KiB pieces, and each piece gives up the GIL and then waits
   for it while the other workers parse their pages: a 700 KiB page costs some 70 thread switches. Pieces of
   256 KiB read the same bytes in a few; a 165k-row refresh takes 0.5 s less, half its system time.
"""

from __future__ import annotations

import collections.abc
import re
from datetime import datetime
from importlib import metadata
from typing import Any, Callable, Iterable

PATCHED_CDK_VERSION = "7.39.1"
# The manifest's `cursor_datetime_formats` entry for the API's timestamps.
API_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Text that `strptime(API_TIMESTAMP_FORMAT)` reads, with the three fraction digits the API sends.
# `fromisoformat` accepts more (other separators, offsets), so nothing else takes the shortcut.
_API_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_RECENT_TIMESTAMPS = 4096  # 43 days of 15-minute intervals: more than any one window
RESPONSE_READ_BYTES = 256 * 1024
_HASH_ATTRIBUTE = "_callvolume_hash"
_installed = False


def install() -> None:
    """Installs the shortcuts, once; a no-op on a CDK version other than the one they were written for."""
    global _installed
    if _installed or metadata.version("airbyte-cdk") != PATCHED_CDK_VERSION:
        return
    _installed = True
    _skip_unused_attribute_docs()

    import requests.models
    from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
    from airbyte_cdk.sources.declarative.extractors.record_selector import RecordSelector
    from airbyte_cdk.sources.declarative.stream_slicers import declarative_partition_generator
    from airbyte_cdk.sources.types import StreamSlice

    from source_callvolume import record_blocks

    DatetimeParser.parse = _with_api_timestamp_shortcut(DatetimeParser.parse)
    StreamSlice.__hash__ = _computed_once(StreamSlice.__hash__)
    declarative_partition_generator.Mapping = collections.abc.Mapping
    RecordSelector._normalize_by_schema = _without_copies_for_no_transform(RecordSelector._normalize_by_schema)
    requests.models.CONTENT_CHUNK_SIZE = RESPONSE_READ_BYTES
    record_blocks.install()


def _skip_unused_attribute_docs() -> None:
    from serpyco_rs import _describe, _utils
    from serpyco_rs._json_schema import _convert

    for module in (_utils, _describe, _convert):
        if hasattr(module, "get_attributes_doc"):
            module.get_attributes_doc = _no_attribute_docs


def _no_attribute_docs(cls: type) -> dict:
    return {}


def _with_api_timestamp_shortcut(parse: Callable[..., datetime]) -> Callable[..., datetime]:
    # The 16 to 500 queues of an account share each interval's end: most records repeat a recent timestamp.
    recent: dict[str, datetime] = {}

    def parse_api_timestamps_directly(self: Any, date: Any, format: str) -> datetime:
        if format == API_TIMESTAMP_FORMAT and isinstance(date, str):
            parsed = recent.get(date)
            if parsed is not None:
                return parsed
            if _API_TIMESTAMP.fullmatch(date):
                try:
                    parsed = datetime.fromisoformat(date)
                except ValueError:
                    pass  # an impossible date, e.g. February 30th: the CDK's parser raises its own error
                else:
                    if len(recent) >= _RECENT_TIMESTAMPS:
                        recent.clear()
                    recent[date] = parsed
                    return parsed
        return parse(self, date, format)

    return parse_api_timestamps_directly


def _computed_once(slice_hash: Callable[[Any], int]) -> Callable[[Any], int]:
    def hash_once(self: Any) -> int:
        cached = self.__dict__.get(_HASH_ATTRIBUTE)
        if cached is None:
            cached = self.__dict__[_HASH_ATTRIBUTE] = slice_hash(self)
        return cached

    return hash_once


def _without_copies_for_no_transform(normalize: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
    from airbyte_cdk.sources.utils.transform import TransformConfig, TypeTransformer

    def normalize_unless_nothing_to_do(self: Any, records: Iterable[Any], schema: Any) -> Iterable[Any]:
        # The very test with which TypeTransformer.transform returns without touching the record.
        transformer = self.schema_normalization
        if isinstance(transformer, TypeTransformer) and TransformConfig.NoTransform in transformer._config:
            return records
        return normalize(self, records, schema)

    return normalize_unless_nothing_to_do
