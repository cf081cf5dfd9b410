"""The source: the declarative manifest, plus what must happen before any stream runs.

- `config_problems` checks the config against the manifest's spec, the one place its patterns, bounds and
  defaults are written, and turns each violation into a message that names the field and shows its fix.
  Only what a JSON schema cannot say is checked here besides: that the dates are real days and in order.
- `state_problems` refuses a state file of the wrong shape, or whose cursor is not a time.
- A first sync without a start date begins at the first day that holds any interval, found by a binary
  search on `toTimeStamp` with `fromTimeStamp` left out, instead of crawling decades of empty windows. The
  manifest itself requires a start date, so under the CDK's generic runner (which has no search) a read
  without one is refused rather than crawled.
"""

import copy
import logging
import math
import statistics
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional

import jsonschema
import yaml
from airbyte_cdk.models import AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog, FailureType
from airbyte_cdk.sources.declarative.parsers.custom_code_compiler import SDM_COMPONENTS_MODULE_NAME
from airbyte_cdk.sources.declarative.parsers.manifest_component_transformer import ManifestComponentTransformer
from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.declarative.models.declarative_component_schema import HttpRequester as HttpRequesterModel
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.airbyte_secrets_utils import get_secret_paths
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_callvolume import components
from source_callvolume.components import (
    CURSOR_FIELD,
    EARLIEST,
    HAS_MORE_FIELD,
    RECORDS_FIELD,
    TOTAL_COUNT_FIELD,
    floor_to_interval,
    format_utc,
    is_count,
    now_utc,
    parse_utc,
    parsed_page,
)

# The manifest names its components the way the CDK's generic runner registers them; inside the package they
# are this package's module, registered under that name as the CDK's component lookup expects.
sys.modules.setdefault(SDM_COMPONENTS_MODULE_NAME, components)

MANIFEST_PATH = Path(__file__).with_name("manifest.yaml")
STREAM_NAME = "call_volume"
# Far enough back for any contact centre's history; the search needs a lower bound to stop at.
EARLIEST_SEARCHED_DAY = parse_utc("2000-01-01T00:00:00Z")
# An answer that contradicts itself is asked again this often before the search gives up on it.
CONTRADICTION_RETRIES = 2


class SourceCallvolume(ConcurrentDeclarativeSource):
    """The manifest's source, given the manifest this module has read once (a read builds the source twice, before
    and after planning, and the YAML need not be parsed each time)."""

    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        **_: Any,
    ) -> None:
        reading = config is not None and catalog is not None
        self._state_cursor = _state_cursor(state)
        self._needs_first_day = reading and not config.get("start_date") and self._state_cursor is None  # type: ignore[union-attr]
        self._needs_windows = reading and not config.get("window_hours")  # type: ignore[union-attr]
        if config and not config.get("start_date"):
            # The manifest needs a lower bound; a state, or the first-day search before the read, gives the real one.
            config = {**config, "start_date": EARLIEST}
        super().__init__(
            catalog=catalog or ConfiguredAirbyteCatalog(streams=[]), config=config or {}, state=state or [],
            source_config=copy.deepcopy(manifest()),
        )

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        if self._needs_first_day or self._needs_windows:
            planned = _Planner(config, logger).plan(self._needs_first_day, self._state_cursor)
            yield from SourceCallvolume(catalog, planned, state).read(logger, planned, catalog, state)
            return
        yield from super().read(logger, config, catalog, state)


def _state_cursor(state: Optional[List[AirbyteStateMessage]]) -> Optional[Any]:
    for message in state or []:
        stream = getattr(message, "stream", None)
        if stream is not None and stream.stream_descriptor.name == STREAM_NAME and stream.stream_state is not None:
            return parse_utc(getattr(stream.stream_state, CURSOR_FIELD, None))
    return None


class _Planner:
    """What the package asks Kore.ai before a read, under the same request budget as the read itself.

    - Without `start_date` or a state: the account's first day, by a search on `toTimeStamp` with
      `fromTimeStamp` left out (a page's earliest row bounds it; then doubling back and bisection).
    - Without `window_hours`: a window length from the account's density (its `totalCount` over a known span) and
      the rows a page really holds (Kore.ai may cap pages below `page_size`), so that a window holds about
      `PAGES_PER_WINDOW` full pages: the last page of each window is the only one not full.
    - Without `num_workers`, once it has asked at least once: as many workers as hide the API's latency behind
      the connector's own work and keep the budget busy, and no more (`_workers`); then windows whose count is a
      multiple of theirs, so that the last windows do not run with most workers idle.
    Its few requests count against `requests_per_minute`: the read's own budget is lowered by as many, or, when
    that would slow it too much, the read waits until they are a minute old.
    """

    PAGES_PER_WINDOW = 10
    PROBE_DAYS = 7
    # A range this short is read in one window without a density probe (an incremental sync run daily).
    ONE_WINDOW_HOURS = 48
    # What a row costs the connector from its page's arrival to its line on stdout, all threads together (they
    # share one interpreter lock): about 75 µs, measured by `python -m bench` (throughput, num_workers 1) on a
    # 2-core Xeon. It only weighs the API's latency against the connector's own work.
    ROW_SECONDS = 75e-6
    # Past this many the workers of a GIL-bound connector mostly queue for the lock (README, "Performance").
    MOST_WORKERS = 16

    def __init__(self, config: Mapping[str, Any], logger: logging.Logger) -> None:
        self._config, self._logger = config, logger
        self._page_size = int(config.get("page_size") or 1000)
        self._rate = int(config.get("requests_per_minute") or 50)
        self._sent: List[float] = []
        self._latencies: List[float] = []
        self._total: Optional[int] = None
        self._cap: Optional[int] = None
        factory = ModelToComponentFactory()
        factory.set_api_budget(resolved_manifest()["api_budget"], config)
        self._requester = factory.create_component(
            HttpRequesterModel, resolved_manifest()["definitions"]["call_volume_requester"], config, name=STREAM_NAME
        )

    def plan(self, needs_first_day: bool, state_cursor: Optional[Any]) -> Mapping[str, Any]:
        planned = dict(self._config)
        end = parse_utc(self._config.get("end_date")) or now_utc()
        if needs_first_day:
            planned["start_date"] = self._first_day(end)
        if not self._config.get("window_hours"):
            planned["window_hours"] = self._window_hours(planned, state_cursor, end)
        if not self._config.get("num_workers") and self._latencies:
            planned["num_workers"] = self._workers()
        if not self._config.get("window_hours"):
            planned["window_hours"] = self._balanced(planned, state_cursor, end)
        if self._sent:
            planned["requests_per_minute"] = self._rate_left_for_the_read()
        return planned

    def _page(self, start: Optional[Any], end: Any) -> Mapping[str, Any]:
        """A page of call volume: the error handler asks again for any answer that is not one, and fails the read
        once its retries are spent."""
        # The window's end is one cursor granularity (1s) before `toTimeStamp`, as in every window.
        window = StreamSlice(
            partition={}, cursor_slice={"start_time": format_utc(start) if start else "", "end_time": format_utc(end.subtract(seconds=1))}
        )
        self._sent.append(time.monotonic())
        response = self._requester.send_request(stream_slice=window)  # type: ignore[arg-type]
        self._latencies.append(response.elapsed.total_seconds())  # type: ignore[union-attr]
        return parsed_page(response)  # type: ignore[return-value]

    def _rows_before(self, moment: Any) -> Optional[Any]:
        """The earliest interval start among the rows a page before `moment` holds, or None when there are none."""
        for _ in range(CONTRADICTION_RETRIES + 1):
            page = self._page(None, moment)
            rows, total, has_more = page[RECORDS_FIELD], page.get(TOTAL_COUNT_FIELD), page.get(HAS_MORE_FIELD)
            if rows:
                self._learn(rows, total, has_more)
                starts = [parse_utc(row.get("intervalStartTimeStamp")) for row in rows]
                return min((start for start in starts if start is not None), default=moment.subtract(days=1))
            if not (has_more is True or (is_count(total) and total > 0)):
                return None
        raise AirbyteTracedException(
            message=(
                f"Looking for the account's first day, Kore.ai answered an empty page that says more rows exist before "
                f"{format_utc(moment)} (hasMore {has_more}, totalCount {total}), {CONTRADICTION_RETRIES + 1} times. The "
                "connector cannot tell where the history starts: set `start_date` to the first day to read."
            ),
            failure_type=FailureType.config_error,
        )

    def _learn(self, rows: List[Any], total: Any, has_more: Any) -> None:
        if self._total is None and is_count(total):
            self._total = total
        if self._cap is None and (has_more is True or (is_count(total) and total > len(rows))):
            self._cap = len(rows)  # fewer than asked although more exist: the server's page cap

    def _first_day(self, end: Any) -> str:
        first_day = first_day_with_rows(self._rows_before, end)
        if first_day is None:
            self._logger.info("No start_date and the account has no call volume yet: reading from now on.")
            return format_utc(floor_to_interval(now_utc()))
        self._logger.info(f"No start_date: the account's first interval is on {first_day.format('YYYY-MM-DD')}; reading from there.")
        return format_utc(first_day)

    @staticmethod
    def _read_from(planned: Mapping[str, Any], state_cursor: Optional[Any]) -> Any:
        lookback = int(planned.get("lookback_minutes") or 180)
        return state_cursor.subtract(minutes=lookback) if state_cursor is not None else parse_utc(planned["start_date"])

    def _window_hours(self, planned: Mapping[str, Any], state_cursor: Optional[Any], end: Any) -> int:
        start = self._read_from(planned, state_cursor)
        span_hours = (end - start).total_seconds() / 3600
        if span_hours <= self.ONE_WINDOW_HOURS:
            return self.ONE_WINDOW_HOURS
        if self._total is not None:
            # The search's first answer counted every row up to the end.
            rows, hours = self._total, span_hours
        else:
            probe_end = min(end, start.add(days=self.PROBE_DAYS))
            page = self._page(start, probe_end)
            served, total = page[RECORDS_FIELD], page.get(TOTAL_COUNT_FIELD)
            self._learn(served, total, page.get(HAS_MORE_FIELD))
            rows, hours = (total if is_count(total) else len(served)), max(1.0, (probe_end - start).total_seconds() / 3600)
        page_rows = self._page_rows()
        density = rows / hours
        window_hours = 744 if density <= 0 else max(1, min(744, math.ceil(self.PAGES_PER_WINDOW * page_rows / density)))
        self._logger.info(
            f"No window_hours: {density:.1f} rows an hour in pages of {page_rows} rows make windows of {window_hours} hours "
            f"(about {self.PAGES_PER_WINDOW} full pages each)."
        )
        return window_hours

    def _page_rows(self) -> int:
        return min(self._cap or self._page_size, self._page_size)

    def _workers(self) -> int:
        """Workers enough to hide the API's latency and keep the budget busy, and no more.

        While one worker waits `latency` for its page, the others' pages keep the connector busy for
        `latency / page_seconds` pages; more workers than that only take turns at the interpreter lock, which
        costs (twice the CPU a row with 8 workers on 2 cores). Under a budget, Little's law: requests a second
        times the time each takes, plus one for the variance.
        """
        latency = statistics.median(self._latencies)
        page_seconds = self._page_rows() * self.ROW_SECONDS
        to_hide_latency = 1 + math.floor(latency / page_seconds)
        to_keep_the_budget_busy = 1 + math.ceil(self._rate / 60 * (latency + page_seconds))
        workers = max(1, min(to_hide_latency, to_keep_the_budget_busy, self.MOST_WORKERS))
        self._logger.info(
            f"No num_workers: Kore.ai answers in {latency * 1000:.0f} ms and a page of {self._page_rows()} rows costs "
            f"the connector about {page_seconds * 1000:.0f} ms, at {self._rate} requests a minute: "
            f"{workers} worker{'s' if workers > 1 else ''}."
        )
        return workers

    def _balanced(self, planned: Mapping[str, Any], state_cursor: Optional[Any], end: Any) -> int:
        """The planned window length, made longer so that the windows come in full rounds of the workers."""
        hours, workers = int(planned["window_hours"]), planned.get("num_workers")
        span_hours = (end - self._read_from(planned, state_cursor)).total_seconds() / 3600
        windows = math.ceil(span_hours / hours)
        if not workers or windows <= workers or windows % workers == 0:
            return hours
        return math.ceil(span_hours / (windows // workers * workers))

    def _rate_left_for_the_read(self) -> int:
        """The read's budget once the planning requests are counted: lowered by them, or whole after a wait."""
        spent = len(self._sent)
        if spent * 5 <= self._rate:
            return self._rate - spent
        wait = 60 - (time.monotonic() - self._sent[0])
        if wait > 0:
            self._logger.info(f"Waiting {wait:.0f} s so that the first-day search's {spent} requests and the read stay within requests_per_minute.")
            time.sleep(wait)
        return self._rate


def first_day_with_rows(rows_before: Callable[[Any], Optional[Any]], now: Any) -> Optional[Any]:
    """The last midnight before which there are no rows, or None when there are none at all.

    `rows_before(t)` gives the earliest interval start among some rows before `t`, or None when there are none;
    "are there rows before t" is monotonic in t. The first answer bounds the search (if Kore.ai sorts oldest
    first, its earliest row is on the first day and one more request confirms it); then a doubling search
    backwards and a bisection find the edge in about 2·log2(days) requests at most.
    """
    earliest = rows_before(now.start_of("day").add(days=1))
    if earliest is None:
        return None
    with_rows = earliest.start_of("day").add(days=1)
    step, without_rows = 1, EARLIEST_SEARCHED_DAY
    while with_rows.subtract(days=step) > EARLIEST_SEARCHED_DAY:
        candidate = with_rows.subtract(days=step)
        found = rows_before(candidate)
        if found is None:
            without_rows = candidate
            break
        with_rows, step = min(candidate, found.start_of("day").add(days=1)), step * 2
    while (with_rows - without_rows).in_days() > 1:
        middle = without_rows.add(days=(with_rows - without_rows).in_days() // 2)
        found = rows_before(middle)
        if found is None:
            without_rows = middle
        else:
            with_rows = min(middle, found.start_of("day").add(days=1))
    return without_rows


# --- The config, checked against the spec -------------------------------------------------------------


@lru_cache(maxsize=1)
def manifest() -> Mapping[str, Any]:
    return yaml.safe_load(MANIFEST_PATH.read_text())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def resolved_manifest() -> Mapping[str, Any]:
    resolved = ManifestReferenceResolver().preprocess_manifest(dict(manifest()))
    return ManifestComponentTransformer().propagate_types_and_parameters("", resolved, {})  # type: ignore[no-any-return]


def connection_specification() -> Mapping[str, Any]:
    return manifest()["spec"]["connection_specification"]  # type: ignore[no-any-return]


def config_problems(config: Mapping[str, Any]) -> List[str]:
    """Every problem of the config, each naming the field and the fix; an empty list when it is usable."""
    specification = connection_specification()
    validator = jsonschema.Draft7Validator(specification)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    # A field that breaks two of its rules (a `oneOf` and a `type`) may be explained twice in the same words.
    problems = list(dict.fromkeys(_explain(error, specification) for error in errors))
    if problems:
        return problems
    start, end = _real_date(config, "start_date", problems), _real_date(config, "end_date", problems)
    start = floor_to_interval(start) if start is not None else None
    if start is not None and end is not None and end <= start:
        problems.append("`end_date` must be after `start_date`: swap them or leave `end_date` empty to read up to now.")
    return problems


def _explain(error: jsonschema.ValidationError, specification: Mapping[str, Any]) -> str:
    """One sentence naming the field, what it must be, and the spec's own description and example as the fix."""
    if error.validator == "oneOf" and error.context:
        return _explain(_matching_branch_error(error), specification)
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        path.append(str(error.message).split("'")[1])
    field_schema = _field_schema(specification, path)
    example = field_schema.get("examples", [None])[0]
    fix = " ".join(part for part in (field_schema.get("description", "").strip(), f"For example: {example}." if example is not None else "") if part)
    name = ".".join(path)
    if error.validator == "required":
        return f"`{name}` is missing: {fix}"
    # A secret's value is never repeated back, nor that of a field holding one (a secret pasted in its place).
    value = "" if get_secret_paths(field_schema) else f" ({error.instance!r})"
    return f"`{name}`{value} must be {_expected(error)}: {fix}"


def _matching_branch_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Of a oneOf's failures, the one of the branch the config chose (its `const` matched); when it chose none,
    the `const` of the first branch, which `_expected` words as the choice of every branch's."""
    by_branch: dict = {}
    for sub_error in error.context:  # type: ignore[union-attr]
        by_branch.setdefault(sub_error.schema_path[0], []).append(sub_error)
    for errors in by_branch.values():
        if not any(sub_error.validator == "const" for sub_error in errors):
            return errors[0]
    return next(sub_error for sub_error in error.context if sub_error.validator == "const")  # type: ignore[union-attr]


def _field_schema(specification: Mapping[str, Any], path: List[str]) -> Mapping[str, Any]:
    schema: Mapping[str, Any] = specification
    for part in path:
        candidates = [schema, *schema.get("oneOf", [])]
        schema = next((c["properties"][part] for c in candidates if part in c.get("properties", {})), {})
    return schema


def _expected(error: jsonschema.ValidationError) -> str:
    schema = error.schema
    if error.validator == "const" and error.parent is not None:
        return "one of " + ", ".join(repr(sub_error.schema["const"]) for sub_error in error.parent.context if sub_error.validator == "const")
    return {
        "pattern": "in the form this field takes",
        "minimum": f"at least {schema.get('minimum')}",
        "maximum": f"at most {schema.get('maximum')}",
        "multipleOf": f"a multiple of {schema.get('multipleOf')}",
        "type": f"of type {schema.get('type')}",
    }.get(str(error.validator), "accepted")


def _real_date(config: Mapping[str, Any], name: str, problems: List[str]) -> Optional[Any]:
    value = config.get(name)
    if not value:
        return None
    parsed = parse_utc(value.strip())
    if parsed is None:
        problems.append(f"`{name}` must be a real UTC time written YYYY-MM-DDTHH:MM:SSZ, e.g. 2024-01-01T00:00:00Z; it is {value!r}.")
    return parsed


# --- The state ----------------------------------------------------------------------------------------

_STATE_SHAPE = (
    'a JSON list of STREAM state messages, e.g. [{"type": "STREAM", "stream": {"stream_descriptor": '
    '{"name": "call_volume"}, "stream_state": {"intervalEndTimeStamp": "2024-03-01T10:15:00Z"}}}]'
)


def state_problems(state: Any) -> List[str]:
    """Problems of a state file: its shape, then this stream's cursor; each names what was found and the fix."""
    if state is None:
        return []
    if not isinstance(state, list) or not all(_is_stream_state(message) for message in state):
        found = type(state).__name__ if not isinstance(state, list) else "a list holding " + ", ".join(
            sorted({type(message).__name__ if not isinstance(message, Mapping) else f"{message.get('type')!r} messages" for message in state})
        )
        return [f"The file given with --state holds {found}, not {_STATE_SHAPE}: pass the state the last sync emitted, or none."]
    problems = []
    for message in state:
        stream = message["stream"]
        if stream["stream_descriptor"].get("name") != STREAM_NAME:
            continue
        cursor = (stream.get("stream_state") or {}).get(CURSOR_FIELD)
        if cursor is not None and parse_utc(cursor) is None:
            problems.append(
                f"The state's {CURSOR_FIELD} is {cursor!r}, not a UTC time like 2024-03-01T10:15:00Z: "
                "fix the state file, or reset the stream to sync from `start_date` again."
            )
    return problems


def _is_stream_state(message: Any) -> bool:
    if not isinstance(message, Mapping) or message.get("type") != "STREAM":
        return False
    stream = message.get("stream")
    return (
        isinstance(stream, Mapping)
        and isinstance(stream.get("stream_descriptor"), Mapping)
        and isinstance(stream.get("stream_state", {}), (Mapping, type(None)))
    )
