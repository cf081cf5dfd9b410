"""Entry point of the `source-callvolume` command.

Beyond the CDK's own `launch`, it
- checks the config field by field before anything else, so `check` answers FAILED and `read`/`discover` fail
  with a config error that names the field, before any request (the CDK's schema check names no field);
- masks every JWT, and the config's secrets, in what it prints. The CDK masks the config's secrets in most
  places but not the tokens signed per request, and under `--debug` it logs each request's headers: the
  masking covers those logs, every message printed on stdout but records (traces and their stack traces
  included), and the error that ends a run.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import List, Optional

from source_callvolume import fast_paths

fast_paths.install()  # before the first airbyte_cdk import, which it makes ~0.7 s faster

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
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

from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_callvolume.source import SourceCallvolume, config_problems, state_problems

_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
# orjson's form, and json's, which the CDK falls back to for a record orjson refuses (nested 255 levels deep)
_RECORD_PREFIX = ('{"type":"RECORD"', '{"type": "RECORD"')
_TRACE_PREFIX = '{"type":"TRACE"'
_ERROR_FAILURE_TYPE = re.compile(r'"failure_type":"(\w+)"')
# The internal message of the trace the CDK raises at the end of a read whose streams failed.
_CDK_COMBINED_FAILURE = "Concurrent read failure"
MASK = "****"


def mask_tokens(text: str) -> str:
    """Replaces anything shaped like a JWT (header.payload.signature, base64url JSON) with ****."""
    return _JWT_PATTERN.sub(MASK, text)


class _TokenMaskingFilter(logging.Filter):
    """Masks JWTs in a log record's message and extras (request headers under --debug) before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_tokens(record.getMessage())
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_FIELDS and value is not None:
                setattr(record, name, mask_tokens(str(value)))
        return True


_STANDARD_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, None, None, None))) | {"message", "asctime"}


def _install_token_masking() -> None:
    masking = _TokenMaskingFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(masking)


def _trace(message: str, failure_type: FailureType) -> str:
    trace = AirbyteMessage(
        type=Type.TRACE,
        trace=AirbyteTraceMessage(
            type=TraceType.ERROR,
            emitted_at=datetime.now(timezone.utc).timestamp() * 1000,
            error=AirbyteErrorTraceMessage(
                message=message, internal_message=message, failure_type=failure_type
            ),
        ),
    )
    return AirbyteEntrypoint.airbyte_message_to_string(trace)


def _print(message: str) -> None:
    if not message.startswith(_RECORD_PREFIX):
        message = mask_tokens(filter_secrets(message))
    # One write: under PRINT_BUFFER each write takes its lock, and print() writes twice (the text, then `end`).
    sys.stdout.write(message + "\n")


def _load_json(path: Optional[str], what: str, flag: str) -> Optional[object]:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise _Refused(f"The {what} file {path!r} given with {flag} does not exist.")
    except (OSError, ValueError) as error:
        raise _Refused(f"The {what} file {path!r} given with {flag} is not valid JSON ({error.__class__.__name__}): fix the file.")


class _Refused(Exception):
    """Input the connector refuses before it starts; the message names the cause and the fix."""


def run(args: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if args is None else args
    command = args[0] if args else None
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    try:
        config = _load_json(config_path, "config", "--config")
        if config is not None and not isinstance(config, dict):
            raise _Refused(f"The config file {config_path!r} must hold a JSON object.")
        problems = config_problems(config) if config is not None and command in ("check", "discover", "read") else []
        if problems:
            raise _Refused("The config cannot be used: " + " ".join(problems))
        _load_json(catalog_path, "catalog", "--catalog")  # refuses a file that is not JSON, naming it
        problems = state_problems(_load_json(state_path, "state", "--state"))
        if problems:
            raise _Refused(" ".join(problems))
        source = SourceCallvolume(
            SourceCallvolume.read_catalog(catalog_path) if catalog_path else None,
            config,
            SourceCallvolume.read_state(state_path) if state_path else None,
        )
    except _Refused as refusal:
        if command == "check":
            status = AirbyteMessage(
                type=Type.CONNECTION_STATUS,
                connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=str(refusal)),
            )
            _print(AirbyteEntrypoint.airbyte_message_to_string(status))
            return
        _print(_trace(str(refusal), FailureType.config_error))
        sys.exit(1)

    gc.freeze()  # the ~100 MiB of modules and the source stay: no collection needs to walk them again
    entrypoint = AirbyteEntrypoint(source)
    parsed_args = entrypoint.parse_args(args)
    _install_token_masking()
    stream_failure_types: List[str] = []
    with PRINT_BUFFER:
        try:
            for message in entrypoint.run(parsed_args):
                if message.startswith(_TRACE_PREFIX):
                    stream_failure_types += _ERROR_FAILURE_TYPE.findall(message)
                _print(message)
        except Exception as error:
            # Printed here rather than by the CDK's exception hook, so that the masking applies to it too.
            traced = error if isinstance(error, AirbyteTracedException) else AirbyteTracedException.from_exception(error)
            if traced.internal_message == _CDK_COMBINED_FAILURE and stream_failure_types:
                traced.failure_type = _most_actionable(stream_failure_types)
            _print(AirbyteEntrypoint.airbyte_message_to_string(traced.as_sanitized_airbyte_message()))
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
