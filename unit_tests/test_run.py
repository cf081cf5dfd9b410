"""Pins what the `source-callvolume` command prints, in-process (`source_callvolume.run`; HttpMocker, no network).

- input refused before anything runs (a config that breaks the spec, a missing or non-JSON file, a JSON array, a
  state file it cannot use, a catalog that is not JSON): `check` answers one CONNECTION_STATUS FAILED naming the
  cause and returns; `discover` and `read` print one TRACE `config_error` naming it and exit 1;
- `spec` prints the manifest's spec exactly, its JWT example unmasked; without arguments, run() takes sys.argv;
- masking: the config's secret and anything JWT-shaped become **** on every LOG and TRACE line, on stdout and
  stderr, also in a refusal; a RECORD line passes unchanged;
- `MaskedStream`: records are written in batches of RECORD_BATCH_CHARACTERS, any other line at once and after
  every record before it, then flushed; `flush()` writes the records held; other attributes are the target's;
- the trace that ends a failed read carries the most actionable type of its streams' errors: system_error,
  else transient_error, else config_error (the CDK types it config_error whatever they were); an error raised
  before the streams run (the planner's probe) keeps its own type;
- a read prints its records, in one write, then its state, and returns; it resumes from a state file, and plans
  its windows when the config leaves them open;
- the command gives a thread a turn at the interpreter lock longer than a worker's page of 100 rows takes.

The integration tests run the installed command in subprocesses, out of mutation testing's sight; these run it
in-process, the way the command runs: `run(args)`, with stdout and stderr captured.
"""
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, NamedTuple, Optional

import pytest
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import AirbyteLogFormatter
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets

from source_callvolume.run import MASK, RECORD_BATCH_CHARACTERS, THREAD_SWITCH_INTERVAL_S, MaskedStream, _spec_examples, run
from source_callvolume.source import _Planner, config_problems, connection_specification, state_problems
from testkit import (
    CLIENT_ID,
    CLIENT_SECRET,
    END,
    START,
    STREAM,
    config,
    configured_catalog,
    endpoint_request,
    page,
    record,
    sign,
    stream_state,
    window_request,
)

# A token as the connector signs one, at a fixed time: what a server may echo back.
TOKEN = sign(CLIENT_ID, CLIENT_SECRET, issued_at=1_700_000_000)
SPEC_JWT_EXAMPLE = connection_specification()["properties"]["credentials"]["oneOf"][1]["properties"]["jwt"]["examples"][0]
# The 5xx back-off's attempts before its retries run out (as in test_errors.py).
ATTEMPTS = 10
SERVER_ERRORS = [HttpResponse(body="{}", status_code=503)] * ATTEMPTS
UNAUTHORIZED = HttpResponse(body="{}", status_code=401)
# hasMore=false short of totalCount: rows would be lost, an UntrustworthyAnswerError (system_error).
SHORT_OF_ITS_TOTAL = page([record(1)], has_more=False, total=5)
TWO_PROBLEMS = config(page_size=0, window_hours=0)
# Three days without window_hours: more than the two read in one window unprobed, so the package probes first.
THREE_DAYS_END = "2024-03-04T00:00:00Z"
UNPLANNED = {key: value for key, value in config(end_date=THREE_DAYS_END).items() if key != "window_hours"}


class _Pipe(io.StringIO):
    """A stdout that remembers each write and counts flushes: the system calls a pipe would see."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: List[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


class Printed(NamedTuple):
    """What a command printed, and how it ended."""

    messages: List[dict]  # stdout, a parsed message a line
    exit_code: Optional[int]  # None: run() returned
    stderr: str
    writes: List[str]  # stdout's, as the pipe saw them
    switch_interval: float  # the interpreter's thread switch interval as the command left it


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # The retries of a failing read run out in milliseconds; the CDK still counts every attempt.
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def _run(args: Optional[List[str]]) -> Printed:
    """What the command prints when run with `args` (None: the command line, sys.argv), as a fresh process would."""
    stdout, stderr = _Pipe(), io.StringIO()
    root = logging.getLogger()
    # pytest hangs its own log handlers on the root logger; run() would point them at stdout too, in their plain
    # text. The command has the CDK's handler alone.
    cdk_handlers = [handler for handler in root.handlers if isinstance(handler.formatter, AirbyteLogFormatter)]
    streams = [(handler, handler.stream) for handler in cdk_handlers]
    update_secrets([])  # a fresh process knows no secret yet
    exit_code = None
    switch_interval = sys.getswitchinterval()  # run() sets the process's; the tests after this one keep theirs
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", stderr)
        patch.setattr(sys, "excepthook", sys.excepthook)  # AirbyteEntrypoint installs its own
        patch.setattr(root, "handlers", cdk_handlers)
        try:
            run(args)
        except SystemExit as exit:
            exit_code = exit.code
        finally:
            sys.stdout.flush()  # as the interpreter does at exit: records may be held in a batch
            for handler, stream in streams:
                handler.setStream(stream)
            switch_interval_set = sys.getswitchinterval()
            sys.setswitchinterval(switch_interval)
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    return Printed(lines, exit_code, stderr.getvalue(), stdout.writes, switch_interval_set)


def _file(path: Path, content: Any) -> str:
    """`path`, holding `content` as JSON; a str is written as it is."""
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _read_args(tmp_path: Path, configuration: Any, streams: tuple = (STREAM,)) -> List[str]:
    return ["read", "--config", _file(tmp_path / "config.json", configuration), "--catalog", _file(tmp_path / "catalog.json", configured_catalog(streams=streams))]


def _command_args(command: str, tmp_path: Path, config_path: str) -> List[str]:
    catalog = ["--catalog", _file(tmp_path / "catalog.json", configured_catalog())] if command == "read" else []
    return [command, "--config", config_path, *catalog]


def _of_type(printed: Printed, message_type: str) -> List[dict]:
    return [message for message in printed.messages if message["type"] == message_type]


def _the_one_error(printed: Printed) -> dict:
    """The error of a command that printed one line, a TRACE, and exited 1."""
    assert printed.exit_code == 1, printed
    (trace,) = printed.messages
    assert trace["type"] == "TRACE" and trace["trace"]["type"] == "ERROR"
    return trace["trace"]["error"]


def _the_one_status(printed: Printed) -> dict:
    """The status of a check that printed one line, a CONNECTION_STATUS, and returned."""
    assert printed.exit_code is None, printed
    (status,) = printed.messages
    assert status["type"] == "CONNECTION_STATUS"
    return status["connectionStatus"]


# --- Input refused before anything runs ---------------------------------------------------------------

# The content of the config file (None: no file) and the message that names what is wrong, given the path.
REFUSED_CONFIGS = [
    pytest.param(config(start_date=END, end_date=START), lambda path: "The config cannot be used: `end_date` must be after `start_date`", id="reversed-dates"),
    pytest.param(TWO_PROBLEMS, lambda path: "The config cannot be used: " + " ".join(config_problems(TWO_PROBLEMS)), id="every-problem"),
    pytest.param(None, lambda path: f"The config file {path!r} given with --config does not exist.", id="missing-file"),
    pytest.param("{not json", lambda path: f"The config file {path!r} given with --config is not valid JSON (JSONDecodeError)", id="not-json"),
    pytest.param([config()], lambda path: f"The config file {path!r} must hold a JSON object.", id="json-array"),
]


@pytest.mark.usefixtures("http_mocker")  # were the config let through, no request would leave the machine
@pytest.mark.parametrize("content, cause", REFUSED_CONFIGS)
def test_check_with_a_config_it_cannot_use_answers_failed_naming_the_cause(tmp_path: Path, content: Any, cause: Callable[[str], str]) -> None:
    path = str(tmp_path / "config.json") if content is None else _file(tmp_path / "config.json", content)

    status = _the_one_status(_run(["check", "--config", path]))

    assert status["status"] == "FAILED"
    assert cause(path) in status["message"]


@pytest.mark.usefixtures("http_mocker")
@pytest.mark.parametrize("command", ["discover", "read"])
@pytest.mark.parametrize("content, cause", REFUSED_CONFIGS)
def test_discover_and_read_with_a_config_they_cannot_use_exit_1_with_a_config_error_naming_the_cause(
    tmp_path: Path, command: str, content: Any, cause: Callable[[str], str]
) -> None:
    path = str(tmp_path / "config.json") if content is None else _file(tmp_path / "config.json", content)

    printed = _run(_command_args(command, tmp_path, path))

    error = _the_one_error(printed)
    assert error["failure_type"] == "config_error"
    assert cause(path) in error["message"] and error["internal_message"] == error["message"]
    # Emitted now, in milliseconds (the protocol's unit).
    assert abs(printed.messages[0]["trace"]["emitted_at"] - time.time() * 1000) < 60_000
    assert printed.stderr == ""


@pytest.mark.usefixtures("http_mocker")
@pytest.mark.parametrize(
    # A str is written to the file as it is.
    "state",
    [{STREAM: {"intervalEndTimeStamp": START}}, stream_state("2024-03-01 10:00"), stream_state("yesterday") + stream_state("today"), "[{not json"],
    ids=["legacy-dict", "bad-cursor", "two-bad-cursors", "not-json"],
)
def test_read_with_a_state_file_it_cannot_use_exits_1_with_a_config_error_naming_what_is_wrong(tmp_path: Path, state: Any) -> None:
    path = _file(tmp_path / "state.json", state)
    expected = f"The state file {path!r} given with --state is not valid JSON" if isinstance(state, str) else " ".join(state_problems(state))

    error = _the_one_error(_run([*_read_args(tmp_path, config()), "--state", path]))

    assert error["failure_type"] == "config_error"
    assert expected in error["message"]


@pytest.mark.usefixtures("http_mocker")
def test_read_with_a_catalog_that_is_not_json_exits_1_with_a_config_error_naming_the_file(tmp_path: Path) -> None:
    args = _read_args(tmp_path, config())
    catalog = _file(tmp_path / "catalog.json", "{not json")

    error = _the_one_error(_run(args))

    assert error["failure_type"] == "config_error"
    assert f"The catalog file {catalog!r} given with --catalog is not valid JSON" in error["message"]


@pytest.mark.usefixtures("http_mocker")
@pytest.mark.parametrize("catalog", [[], {"streams": "call_volume"}], ids=["a-list", "streams-not-a-list"])
def test_read_with_a_catalog_of_the_wrong_shape_exits_1_with_a_config_error_naming_the_file(tmp_path: Path, catalog: Any) -> None:
    # Regression: a JSON catalog the CDK's schema refuses ended the command with a bare traceback and no TRACE.
    args = _read_args(tmp_path, config())
    path = _file(tmp_path / "catalog.json", catalog)

    printed = _run(args)
    error = _the_one_error(printed)

    assert printed.exit_code == 1 and error["failure_type"] == "config_error"
    assert f"The catalog file {path!r} given with --catalog is not a configured catalog" in error["message"]
    assert "Traceback" not in printed.stderr


@pytest.mark.usefixtures("http_mocker")
def test_a_config_path_that_is_a_folder_is_refused_as_unreadable_not_as_bad_json(tmp_path: Path) -> None:
    printed = _run(["check", "--config", str(tmp_path)])

    message = _the_one_status(printed)["message"]
    assert f"The config file {str(tmp_path)!r} given with --config cannot be read (IsADirectoryError)" in message


@pytest.mark.usefixtures("http_mocker")
@pytest.mark.parametrize("field, pasted", [("account_id", TOKEN), ("start_date", CLIENT_SECRET)], ids=["token", "client-secret"])
def test_check_does_not_repeat_a_secret_pasted_into_the_wrong_field(tmp_path: Path, field: str, pasted: str) -> None:
    status = _the_one_status(_run(["check", "--config", _file(tmp_path / "config.json", config(**{field: pasted}))]))

    assert f"`{field}` ('{MASK}')" in status["message"]
    assert pasted not in status["message"]


# --- spec, discover, check, and the command line ------------------------------------------------------


def test_spec_prints_the_manifest_spec_exactly_with_its_jwt_example_unmasked() -> None:
    printed = _run(["spec"])

    (spec,) = _of_type(printed, "SPEC")
    assert spec["spec"]["connectionSpecification"] == connection_specification()
    assert SPEC_JWT_EXAMPLE in json.dumps(spec)
    assert printed.exit_code is None


def test_the_command_gives_a_thread_a_turn_at_the_interpreter_lock_longer_than_a_page_of_100_rows_takes() -> None:
    # Regression: with Python's 5 ms a turn ended in the middle of a worker's page, and the dozen workers of the
    # latency benchmark (100 ms answers, pages of 100 rows) passed the lock 17,000 to 60,000 times for 20,731
    # rows instead of about 8,000, and the read after start-up took a quarter longer. Not so long that an answer
    # waits for its thread a sizeable part of the latency the workers hide.
    printed = _run(["spec"])

    assert 100 * _Planner.ROW_SECONDS < printed.switch_interval <= 0.05
    assert printed.switch_interval == THREAD_SWITCH_INTERVAL_S


@pytest.mark.usefixtures("http_mocker")
def test_without_arguments_run_takes_the_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A check, not a spec: the CDK's parser reads sys.argv by itself, the refusal must know the command too.
    monkeypatch.setattr(sys, "argv", ["source-callvolume", "check", "--config", _file(tmp_path / "config.json", config(start_date=END, end_date=START))])

    status = _the_one_status(_run(None))

    assert status["status"] == "FAILED" and "`end_date` must be after `start_date`" in status["message"]


def test_no_command_exits_1_with_a_system_error_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["source-callvolume"])

    printed = _run(None)

    (trace,) = _of_type(printed, "TRACE")
    assert trace["trace"]["error"]["failure_type"] == "system_error"
    assert trace["trace"]["error"]["internal_message"] == "No command passed"
    assert printed.exit_code == 1


def test_discover_prints_the_catalog_of_the_four_streams(tmp_path: Path, http_mocker: HttpMocker) -> None:
    printed = _run(["discover", "--config", _file(tmp_path / "config.json", config())])

    (catalog,) = _of_type(printed, "CATALOG")
    assert {stream["name"] for stream in catalog["catalog"]["streams"]} == {"call_volume", "queues", "agents", "agent_activity"}
    assert printed.exit_code is None


def test_check_succeeds_and_logs_it_on_stdout(tmp_path: Path, http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1)], has_more=False))

    printed = _run(["check", "--config", _file(tmp_path / "config.json", config())])

    assert [status["connectionStatus"] for status in _of_type(printed, "CONNECTION_STATUS")] == [{"status": "SUCCEEDED"}]
    # The CDK's log handler writes to the process's stdout itself: run() points it at the masked one.
    assert {"level": "INFO", "message": "Check succeeded"} in [log["log"] for log in _of_type(printed, "LOG")]
    assert printed.exit_code is None


# --- Masking ------------------------------------------------------------------------------------------


def test_a_token_and_the_client_secret_echoed_back_by_kore_are_masked_on_every_line(tmp_path: Path, http_mocker: HttpMocker) -> None:
    # Regression (issue 13): the TRACE was masked, the ERROR log line printed the signed JWT in clear.
    echoed = {"errors": [{"msg": f"bad token {TOKEN} signed with {CLIENT_SECRET}"}]}
    http_mocker.post(window_request(skip=0), HttpResponse(body=json.dumps(echoed), status_code=400))

    printed = _run(_read_args(tmp_path, config()))

    assert printed.exit_code == 1
    output = json.dumps(printed.messages)
    assert TOKEN not in output and CLIENT_SECRET not in output
    assert any(f"bad token {MASK} signed with {MASK}" in log["log"]["message"] for log in _of_type(printed, "LOG"))
    assert any(f"bad token {MASK} signed with {MASK}" in trace["trace"]["error"]["message"] for trace in _of_type(printed, "TRACE") if "error" in trace["trace"])


def test_what_is_printed_on_stderr_during_a_command_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    # A library's traceback or warning goes to stderr, not through the CDK's logger.
    real_run = AirbyteEntrypoint.run

    def run_that_prints_a_token_on_stderr(self: AirbyteEntrypoint, parsed_args: Any) -> Any:
        print(f"Traceback: request with auth {TOKEN} failed", file=sys.stderr)
        yield from real_run(self, parsed_args)

    monkeypatch.setattr(AirbyteEntrypoint, "run", run_that_prints_a_token_on_stderr)

    printed = _run(["spec"])

    assert printed.stderr == f"Traceback: request with auth {MASK} failed\n"


def test_a_record_holding_a_jwt_shaped_value_is_printed_unchanged(tmp_path: Path, http_mocker: HttpMocker) -> None:
    holding_a_token = {**record(1), "queueId": TOKEN}
    http_mocker.post(window_request(skip=0), page([holding_a_token], has_more=False))

    printed = _run(_read_args(tmp_path, config()))

    assert [message["record"]["data"] for message in _of_type(printed, "RECORD")] == [holding_a_token]


def test_the_spec_examples_kept_from_masking_are_its_string_examples_at_any_depth() -> None:
    # What mask() leaves alone is computed once, at import: the spec output test cannot see a change here.
    schema = {"examples": ["top", 3], "properties": {"a": {"type": "string", "examples": ["nested"]}, "b": {"oneOf": [{"examples": ["in a list"]}, "a leaf"]}}}

    assert _spec_examples(schema) == {"top", "nested", "in a list"}
    assert SPEC_JWT_EXAMPLE in _spec_examples(connection_specification())


# --- MaskedStream -------------------------------------------------------------------------------------


def _record_line(characters: int, prefix: str = '{"type":"RECORD"') -> str:
    """A RECORD line `characters` long, newline included."""
    head, tail = prefix + ',"record":{"stream":"call_volume","data":{"pad":"', '"}}}\n'
    return head + "x" * (characters - len(head) - len(tail)) + tail


def _log_line(message: str) -> str:
    return json.dumps({"type": "LOG", "log": {"level": "INFO", "message": message}}) + "\n"


def test_a_log_line_is_written_masked_at_once_and_flushed() -> None:
    update_secrets([CLIENT_SECRET])
    pipe = _Pipe()
    line = _log_line(f"auth {TOKEN} from {CLIENT_SECRET}, not the example {SPEC_JWT_EXAMPLE}")

    written = MaskedStream(pipe).write(line)

    assert pipe.writes == [_log_line(f"auth {MASK} from {MASK}, not the example {SPEC_JWT_EXAMPLE}")]
    assert pipe.flushes == 1
    assert written == len(line)


# orjson's form, and json's, which the CDK falls back to for a record orjson refuses.
@pytest.mark.parametrize("prefix", ['{"type":"RECORD"', '{"type": "RECORD"'], ids=["orjson", "json"])
def test_records_pass_unchanged_and_go_out_before_the_next_other_line(prefix: str) -> None:
    pipe, first, second = _Pipe(), _record_line(200, prefix).replace("xxx", TOKEN, 1), _record_line(100, prefix)
    masked = MaskedStream(pipe)

    written = [masked.write(first), masked.write(second)]
    held = list(pipe.writes)
    masked.write(_log_line("state"))

    assert written == [len(first), len(second)]
    assert held == []
    assert pipe.writes == [first + second, _log_line("state")]


# A batch of exactly RECORD_BATCH_CHARACTERS goes out; one character short, it is held.
@pytest.mark.parametrize("first", [RECORD_BATCH_CHARACTERS - 100, RECORD_BATCH_CHARACTERS - 1], ids=["exactly", "one-short"])
def test_records_go_out_in_one_write_once_they_add_up_to_the_batch(first: int) -> None:
    pipe, records = _Pipe(), [_record_line(first), _record_line(100)]
    masked = MaskedStream(pipe)

    masked.write(records[0])
    held = list(pipe.writes)
    masked.write(records[1])

    assert held == []
    assert pipe.writes == ["".join(records)]


def test_flush_writes_the_records_held_and_a_new_batch_starts_empty() -> None:
    pipe, record_line, almost_a_batch = _Pipe(), _record_line(100), _record_line(RECORD_BATCH_CHARACTERS - 1)
    masked = MaskedStream(pipe)
    masked.write(record_line)

    masked.flush()
    flushed = (list(pipe.writes), pipe.flushes)
    masked.write(almost_a_batch)

    assert flushed == ([record_line], 1)
    assert pipe.writes == [record_line]


def test_other_attributes_fall_through_to_the_target_stream() -> None:
    pipe = _Pipe()
    masked = MaskedStream(pipe)
    masked.write(_log_line("hello"))

    assert masked.getvalue() == _log_line("hello")
    assert masked.isatty() is False


# --- The trace that ends a failed read ----------------------------------------------------------------


@pytest.mark.parametrize(
    "call_volume_answer, queues_answer, failure_type",
    [
        (SHORT_OF_ITS_TOTAL, None, "system_error"),
        (SERVER_ERRORS, None, "transient_error"),
        (UNAUTHORIZED, None, "config_error"),
        (SHORT_OF_ITS_TOTAL, SERVER_ERRORS, "system_error"),
        (UNAUTHORIZED, SERVER_ERRORS, "transient_error"),
    ],
    ids=["system", "transient", "config", "system-beats-transient", "transient-beats-config"],
)
def test_a_failed_read_ends_with_a_trace_of_the_most_actionable_type_of_its_errors_and_exits_1(
    tmp_path: Path, http_mocker: HttpMocker, call_volume_answer: Any, queues_answer: Any, failure_type: str
) -> None:
    http_mocker.post(window_request(skip=0), call_volume_answer)
    streams: tuple = (STREAM,)
    if queues_answer is not None:
        http_mocker.get(endpoint_request("queues"), queues_answer)
        streams = (STREAM, "queues")

    printed = _run(_read_args(tmp_path, config(), streams))

    last = printed.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["error"]["failure_type"] == failure_type
    assert last["trace"]["error"]["message"].startswith("During the sync, the following streams did not sync successfully")
    assert printed.exit_code == 1


def test_a_read_whose_planning_request_is_refused_exits_1_with_that_request_s_config_error(tmp_path: Path, http_mocker: HttpMocker) -> None:
    # The planner's probe fails before any stream runs: the error's own type is printed, not a combined trace's.
    http_mocker.post(window_request(end=THREE_DAYS_END), UNAUTHORIZED)

    printed = _run(_read_args(tmp_path, UNPLANNED))

    last = printed.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["error"]["failure_type"] == "config_error"
    assert "HTTP 401" in last["trace"]["error"]["message"]
    assert printed.exit_code == 1


# --- A read that succeeds -----------------------------------------------------------------------------


def test_a_read_prints_its_records_then_its_state_and_returns(tmp_path: Path, http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2)], has_more=False))

    printed = _run(_read_args(tmp_path, config()))

    types = [message["type"] for message in printed.messages]
    assert [message["record"]["data"] for message in _of_type(printed, "RECORD")] == [record(1), record(2)]
    assert types.index("STATE") > max(index for index, kind in enumerate(types) if kind == "RECORD")
    assert _of_type(printed, "STATE")[-1]["state"]["stream"]["stream_state"] == {"intervalEndTimeStamp": "2024-03-01T10:00:00Z"}
    assert printed.exit_code is None


def test_a_read_s_records_reach_stdout_in_one_write_not_a_write_a_record(tmp_path: Path, http_mocker: HttpMocker) -> None:
    http_mocker.post(window_request(skip=0), page([record(1), record(2), record(3)], has_more=False))

    printed = _run(_read_args(tmp_path, config()))

    with_records = [write for write in printed.writes if '"type":"RECORD"' in write]
    assert len(with_records) == 1 and with_records[0].count('"type":"RECORD"') == 3


def test_a_read_with_a_state_file_resumes_from_its_cursor_less_the_lookback(tmp_path: Path, http_mocker: HttpMocker) -> None:
    # lookback_minutes defaults to 180: from a cursor at 12:00 the window starts at 09:00.
    http_mocker.post(window_request(skip=0, start="2024-03-01T09:00:00Z"), page([record(1)], has_more=False))
    state = _file(tmp_path / "state.json", stream_state("2024-03-01T12:00:00Z"))

    printed = _run([*_read_args(tmp_path, config()), "--state", state])

    assert [message["record"]["data"] for message in _of_type(printed, "RECORD")] == [record(1)]
    assert printed.exit_code is None


def test_a_read_without_window_hours_sizes_its_windows_from_a_probe_before_reading(tmp_path: Path, http_mocker: HttpMocker) -> None:
    # One row in three days is sparse: one window of 744 hours, which asks what the probe asked.
    http_mocker.post(window_request(end=THREE_DAYS_END), page([record(1)], has_more=False))

    printed = _run(_read_args(tmp_path, UNPLANNED))

    assert any(log["log"]["message"].startswith("No window_hours:") and "windows of 744 hours" in log["log"]["message"] for log in _of_type(printed, "LOG"))
    assert [message["record"]["data"] for message in _of_type(printed, "RECORD")] == [record(1)]
    assert printed.exit_code is None
