"""Shortcuts past three costs in airbyte-cdk 7.39.1 that no manifest option or component can reach.

`install()` runs first thing in run.py, before anything imports airbyte_cdk (see 3). Each shortcut takes only
inputs it handles exactly as the CDK does and passes everything else to the CDK's own code, so records,
state, errors and validation stay the CDK's. Together they take about 40% off the CPU of the full refresh
that `python -m bench` measures. All three belong upstream (airbyte-python-cdk, serpyco-rs); drop each one
when the pinned versions have it. On any other CDK version nothing is patched.

1. Cursor timestamps. For every record the concurrent cursor parses `intervalEndTimeStamp` with
   `datetime.strptime` (~9 µs). The API writes one shape, `2024-06-01T09:45:00.000Z`, which
   `datetime.fromisoformat` turns into the same aware UTC datetime in 0.2 µs.
2. Window hashes. For every record the cursor looks up the record's window in a dict, and
   `StreamSlice.__hash__` JSON-encodes and SHA-256-hashes the window each time (~5 µs). A StreamSlice is
   immutable (its `__setitem__` raises), so its first hash serves for good.
3. Start-up. Building its protocol serializers, serpyco-rs re-parses the source of every protocol class to
   collect attribute docstrings for JSON schemas the connector never asks for: ~0.7 s of every command.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import metadata
from typing import Any, Callable

PATCHED_CDK_VERSION = "7.39.1"
# The manifest's `cursor_datetime_formats` entry for the API's timestamps.
API_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Text that `strptime(API_TIMESTAMP_FORMAT)` reads, with the three fraction digits the API sends.
# `fromisoformat` accepts more (other separators, offsets), so nothing else takes the shortcut.
_API_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_HASH_ATTRIBUTE = "_callvolume_hash"
_installed = False


def install() -> None:
    """Installs the three shortcuts, once; a no-op on a CDK version other than the one they were written for."""
    global _installed
    if _installed or metadata.version("airbyte-cdk") != PATCHED_CDK_VERSION:
        return
    _installed = True
    _skip_unused_attribute_docs()

    from airbyte_cdk.sources.declarative.datetime.datetime_parser import DatetimeParser
    from airbyte_cdk.sources.types import StreamSlice

    DatetimeParser.parse = _with_api_timestamp_shortcut(DatetimeParser.parse)
    StreamSlice.__hash__ = _computed_once(StreamSlice.__hash__)


def _skip_unused_attribute_docs() -> None:
    from serpyco_rs import _describe, _utils
    from serpyco_rs._json_schema import _convert

    for module in (_utils, _describe, _convert):
        if hasattr(module, "get_attributes_doc"):
            module.get_attributes_doc = _no_attribute_docs


def _no_attribute_docs(cls: type) -> dict:
    return {}


def _with_api_timestamp_shortcut(parse: Callable[..., datetime]) -> Callable[..., datetime]:
    def parse_api_timestamps_directly(self: Any, date: Any, format: str) -> datetime:
        if format == API_TIMESTAMP_FORMAT and isinstance(date, str) and _API_TIMESTAMP.fullmatch(date):
            try:
                return datetime.fromisoformat(date)
            except ValueError:
                pass  # an impossible date, e.g. February 30th: the CDK's parser raises its own error
        return parse(self, date, format)

    return parse_api_timestamps_directly


def _computed_once(slice_hash: Callable[[Any], int]) -> Callable[[Any], int]:
    def hash_once(self: Any) -> int:
        cached = self.__dict__.get(_HASH_ATTRIBUTE)
        if cached is None:
            cached = self.__dict__[_HASH_ATTRIBUTE] = slice_hash(self)
        return cached

    return hash_once
