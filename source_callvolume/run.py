"""Entry point of the `source-callvolume` command: the CDK's entrypoint, plus what `launch()` lacks.

- The config is checked field by field against the spec before anything else, so `check` answers FAILED and
  `read`/`discover` fail with a config error that names the field and its fix, before any request (the CDK's
  own schema check names no field); a state file of the wrong shape is refused the same way.
- Every line the command prints passes one masking point, `MaskedStream`, on stdout and stderr alike: LOG
  and TRACE messages, stack traces, `--debug` request and response dumps. It masks the config's secrets and
  anything shaped like a JWT (the tokens signed per request, which the CDK does not know as secrets, also
  when a server echoes one back), but not the spec's own examples. Records pass unchanged.
- The trace that ends a failed read carries the type of the errors it combines (the CDK types it
  `config_error` whatever they were).
"""

import json
import logging
import re
import sys
import threading
from typing import Any, List, Optional, TextIO

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteTraceMessage,
    FailureType,
    Status,
    TraceType,
    Type,
)
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_callvolume.components import now_utc
from source_callvolume.source import SourceCallvolume, config_problems, connection_specification, state_problems

_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
# orjson's form, and json's, which the CDK falls back to for a record orjson refuses (nested 255 levels deep)
_RECORD_PREFIX = ('{"type":"RECORD"', '{"type": "RECORD"')
_TRACE_PREFIX = '{"type":"TRACE"'
_ERROR_FAILURE_TYPE = re.compile(r'"failure_type":"(\w+)"')
# The internal message of the trace the CDK raises at the end of a read whose streams failed.
_CDK_COMBINED_FAILURE = "Concurrent read failure"
MASK = "****"
RECORD_BATCH_CHARACTERS = 1 << 16
# Python's default of 5 ms is shorter than what a page of 100 rows costs the connector (about 7.5 ms), so with a
# dozen workers the interpreter lock changed hands in the middle of pages, over and over: 17,000 to 60,000
# voluntary context switches instead of about 8,000 for 20,731 rows, and the read after start-up took a quarter
# longer (`python -m bench --only latency`, README "Performance"). A thread whose answer has arrived may now
# wait a turn or two longer for the lock, tens of milliseconds, which the workers hide with the API's latency.
THREAD_SWITCH_INTERVAL_S = 0.02


def _spec_examples(schema: Any) -> set:
    if isinstance(schema, dict):
        found = {example for example in schema.get("examples", []) if isinstance(example, str)}
        return found.union(*(_spec_examples(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_spec_examples(value) for value in schema))
    return set()


_NOT_SECRET = _spec_examples(connection_specification())


def mask(text: str) -> str:
    """The text with the config's secrets and every JWT-shaped string but the spec's examples as ****."""
    return _JWT_PATTERN.sub(lambda match: match.group() if match.group() in _NOT_SECRET else MASK, filter_secrets(text))


class MaskedStream:
    """The one masking point: a text stream that masks whatever is written to it, records excepted.

    Records are gathered and written `RECORD_BATCH_CHARACTERS` at a time: the output is a pipe, often unbuffered
    (images commonly set PYTHONUNBUFFERED=1), where a write a record costs a system call a record. Anything else,
    a state or a log line, goes out at once, after every record before it.
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._records: List[str] = []
        self._gathered = 0

    def write(self, text: str) -> int:
        with self._lock:
            if text.startswith(_RECORD_PREFIX):
                self._records.append(text)
                self._gathered += len(text)
                if self._gathered >= RECORD_BATCH_CHARACTERS:
                    self._write_records()
            else:
                self._write_records()
                self._target.write(mask(text))
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._write_records()
            self._target.flush()

    def _write_records(self) -> None:
        if self._records:
            self._target.write("".join(self._records))
            self._records, self._gathered = [], 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _route_output_through_masking() -> None:
    sys.stdout, sys.stderr = MaskedStream(sys.stdout), MaskedStream(sys.stderr)
    # The CDK's log handler writes to its own buffer, straight to the process's stdout: it is pointed here.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stdout)


def _emit(message: str) -> None:
    # One write a message: print() writes the text and the newline apart, and other threads log in between.
    sys.stdout.write(message + "\n")


def _trace(message: str, failure_type: FailureType) -> str:
    trace = AirbyteMessage(
        type=Type.TRACE,
        trace=AirbyteTraceMessage(
            type=TraceType.ERROR,
            emitted_at=now_utc().timestamp() * 1000,
            error=AirbyteErrorTraceMessage(message=message, internal_message=message, failure_type=failure_type),
        ),
    )
    return AirbyteEntrypoint.airbyte_message_to_string(trace)


def _load_json(path: Optional[str], what: str, flag: str) -> Optional[object]:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise _Refused(f"The {what} file {path!r} given with {flag} does not exist.")
    except ValueError as error:
        raise _Refused(f"The {what} file {path!r} given with {flag} is not valid JSON ({error.__class__.__name__}): fix the file.")
    except OSError as error:
        raise _Refused(f"The {what} file {path!r} given with {flag} cannot be read ({error.__class__.__name__}): give a readable file.")


class _Refused(Exception):
    """Input the connector refuses before it starts; the message names the cause and the fix."""


def _source(command: Optional[str], args: List[str]) -> SourceCallvolume:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    config = _load_json(config_path, "config", "--config")
    if config is not None and not isinstance(config, dict):
        raise _Refused(f"The config file {config_path!r} must hold a JSON object.")
    if config is not None:
        update_secrets(get_secrets(connection_specification(), config))
        problems = config_problems(config) if command in ("check", "discover", "read") else []
        if problems:
            raise _Refused("The config cannot be used: " + " ".join(problems))
    _load_json(catalog_path, "catalog", "--catalog")  # refuses a file that is not JSON, naming it
    problems = state_problems(_load_json(state_path, "state", "--state"))
    if problems:
        raise _Refused(" ".join(problems))
    try:
        catalog = SourceCallvolume.read_catalog(catalog_path) if catalog_path else None
    except Exception as error:  # the CDK's schema check: a JSON file that is not a configured catalog
        raise _Refused(
            f"The catalog file {catalog_path!r} given with --catalog is not a configured catalog ({error.__class__.__name__}): "
            "pass the configured catalog Airbyte gives the connector."
        )
    return SourceCallvolume(catalog, config, SourceCallvolume.read_state(state_path) if state_path else None)


def run(args: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if args is None else args
    command = args[0] if args else None
    sys.setswitchinterval(THREAD_SWITCH_INTERVAL_S)
    _route_output_through_masking()
    try:
        source = _source(command, args)
    except _Refused as refusal:
        if command == "check":
            status = AirbyteMessage(
                type=Type.CONNECTION_STATUS,
                connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=str(refusal)),
            )
            _emit(AirbyteEntrypoint.airbyte_message_to_string(status))
            return
        _emit(_trace(str(refusal), FailureType.config_error))
        sys.exit(1)

    entrypoint = AirbyteEntrypoint(source)
    stream_failure_types: List[str] = []
    try:
        for message in entrypoint.run(entrypoint.parse_args(args)):
            if message.startswith(_TRACE_PREFIX):
                stream_failure_types += _ERROR_FAILURE_TYPE.findall(message)
            _emit(message)
    except Exception as error:
        traced = error if isinstance(error, AirbyteTracedException) else AirbyteTracedException.from_exception(error)
        if traced.internal_message == _CDK_COMBINED_FAILURE and stream_failure_types:
            traced.failure_type = _most_actionable(stream_failure_types)
        _emit(AirbyteEntrypoint.airbyte_message_to_string(traced.as_sanitized_airbyte_message()))
        sys.exit(1)


def _most_actionable(failure_types: List[str]) -> FailureType:
    """The type the run's last trace should carry: a config error only when every stream failed for its config.

    The CDK ends a run whose streams failed with one combined trace typed `config_error` whatever the streams'
    own errors were ("not actionable", it says), so a sync that ran out of retries would tell the user to fix the
    config. This gives the combined trace the type of the errors it combines.
    """
    for failure_type in (FailureType.system_error, FailureType.transient_error):
        if failure_type.value in failure_types:
            return failure_type
    return FailureType.config_error


if __name__ == "__main__":
    run()
