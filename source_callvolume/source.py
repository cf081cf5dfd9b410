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

import logging
import sys
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
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.sources.types import StreamSlice
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


class SourceCallvolume(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        **_: Any,
    ) -> None:
        self._has_state = bool(state)
        if config and not config.get("start_date"):
            # No lower bound known yet: a read without state finds the first day before it starts (`read`).
            config = {**config, "start_date": EARLIEST}
            self._needs_first_day = not state and catalog is not None
        else:
            self._needs_first_day = False
        super().__init__(path_to_yaml=str(MANIFEST_PATH), catalog=catalog, config=config, state=state)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        if self._needs_first_day:
            found = {**config, "start_date": self._first_day_with_data(logger, config)}
            yield from SourceCallvolume(catalog, found, state).read(logger, found, catalog, state)
            return
        yield from super().read(logger, config, catalog, state)

    def _first_day_with_data(self, logger: logging.Logger, config: Mapping[str, Any]) -> str:
        requester = _search_requester({**config, "page_size": 1})

        def has_rows_before(moment: Any) -> bool:
            # The window's end is one cursor granularity (1s) before `toTimeStamp`, as in every window.
            window = StreamSlice(partition={}, cursor_slice={"start_time": "", "end_time": format_utc(moment.subtract(seconds=1))})
            for _ in range(CONTRADICTION_RETRIES + 1):
                page = parsed_page(requester.send_request(stream_slice=window))  # type: ignore[arg-type]
                if page is None:
                    break
                rows, total, has_more = page[RECORDS_FIELD], page.get(TOTAL_COUNT_FIELD), page.get(HAS_MORE_FIELD)
                if rows or not (has_more is True or (isinstance(total, int) and total > 0)):
                    return bool(rows)
            else:
                raise AirbyteTracedException(
                    message=(
                        f"Looking for the account's first day, Kore.ai answered an empty page that says more rows exist "
                        f"before {format_utc(moment)} (hasMore {has_more}, totalCount {total}), {CONTRADICTION_RETRIES + 1} "
                        "times. The connector cannot tell where the history starts: set `start_date` to the first day to read."
                    ),
                    failure_type=FailureType.config_error,
                )
            raise AirbyteTracedException(
                message="Looking for the account's first day, Kore.ai sent an answer that is not call-volume JSON: set `start_date` to skip the search.",
                failure_type=FailureType.transient_error,
            )

        first_day = first_day_with_rows(has_rows_before, now_utc())
        if first_day is None:
            logger.info("No start_date and the account has no call volume yet: reading from now on.")
            return format_utc(floor_to_interval(now_utc()))
        logger.info(f"No start_date: the account's first interval is on {first_day.format('YYYY-MM-DD')}; reading from there.")
        return format_utc(first_day)


def _search_requester(config: Mapping[str, Any]) -> Any:
    """The manifest's own requester (authenticator, error handling, retries), for the first-day search."""
    definition = resolved_manifest()["definitions"]["requester"]
    return ModelToComponentFactory().create_component(HttpRequesterModel, definition, config, name=STREAM_NAME)


def first_day_with_rows(has_rows_before: Callable[[Any], bool], now: Any) -> Optional[Any]:
    """The last midnight before which there are no rows, or None when there are none at all.

    `has_rows_before(t)` says whether any interval lies before `t`; it is monotonic in `t`, so a doubling
    search backwards then a bisection finds the edge in about 2·log2(days) requests.
    """
    with_rows = now.start_of("day").add(days=1)
    if not has_rows_before(with_rows):
        return None
    step, without_rows = 1, EARLIEST_SEARCHED_DAY
    while with_rows.subtract(days=step) > EARLIEST_SEARCHED_DAY:
        candidate = with_rows.subtract(days=step)
        if not has_rows_before(candidate):
            without_rows = candidate
            break
        with_rows, step = candidate, step * 2
    while (with_rows - without_rows).in_days() > 1:
        middle = without_rows.add(days=(with_rows - without_rows).in_days() // 2)
        if has_rows_before(middle):
            with_rows = middle
        else:
            without_rows = middle
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
    problems = [_explain(error, specification) for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))]
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
    # A secret's value is never repeated back.
    value = "" if field_schema.get("airbyte_secret") else f" ({error.instance!r})"
    return f"`{name}`{value} must be {_expected(error)}: {fix}"


def _matching_branch_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Of a oneOf's failures, the one of the branch the config chose (its `const` matched), else the first."""
    by_branch: dict = {}
    for sub_error in error.context:  # type: ignore[union-attr]
        by_branch.setdefault(sub_error.schema_path[0], []).append(sub_error)
    for errors in by_branch.values():
        if not any(sub_error.validator == "const" for sub_error in errors):
            return errors[0]
    return error.context[0]  # type: ignore[index]


def _field_schema(specification: Mapping[str, Any], path: List[str]) -> Mapping[str, Any]:
    schema: Mapping[str, Any] = specification
    for part in path:
        candidates = [schema, *schema.get("oneOf", [])]
        schema = next((c["properties"][part] for c in candidates if part in c.get("properties", {})), {})
    return schema


def _expected(error: jsonschema.ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    return {
        "pattern": "in the form this field takes",
        "minimum": f"at least {schema.get('minimum')}",
        "maximum": f"at most {schema.get('maximum')}",
        "multipleOf": f"a multiple of {schema.get('multipleOf')}",
        "type": f"of type {schema.get('type')}",
        "const": f"{schema.get('const')!r}",
        "enum": f"one of {schema.get('enum')}",
        "format": f"a {schema.get('format')}",
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
