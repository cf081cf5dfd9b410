"""Pins that the config check and the spec are one source of truth: every value the spec refuses is refused by
`config_problems` with a message naming the field and its fix, every example the spec gives is accepted, and
what a schema cannot say (real dates, end after start) is checked besides."""

import re
from typing import Any, Iterator, List, Tuple

import pytest

from source_callvolume.source import config_problems, connection_specification
from testkit import config

SPEC = connection_specification()


def _fields(properties: dict, path: str = "") -> Iterator[Tuple[str, dict]]:
    for name, schema in properties.items():
        yield f"{path}{name}", schema
        for option in schema.get("oneOf", []):
            yield from _fields(option["properties"], f"{path}{name}.")


def _violations(schema: dict) -> List[Any]:
    """Values the field's own schema refuses, one per rule it states."""
    values: List[Any] = []
    if "minimum" in schema:
        values.append(schema["minimum"] - 1)
    if "maximum" in schema:
        values.append(schema["maximum"] + 1)
    if schema.get("multipleOf", 1) > 1:
        values.append(schema["minimum"] + 1)
    if "pattern" in schema:
        values.append("not a value/?..")
    if schema.get("type") == "integer":
        values.append("12")
    return values


def _with(name: str, value: Any) -> dict:
    candidate = config()
    if name.startswith("credentials."):
        field = name.split(".", 1)[1]
        auth_type = "jwt" if field == "jwt" else "client_credentials"
        base = {"auth_type": "jwt", "jwt": "a.b.c"} if auth_type == "jwt" else candidate["credentials"]
        candidate["credentials"] = {**base, field: value}
    else:
        candidate[name] = value
    return candidate


CASES = [(name, value) for name, schema in _fields(SPEC["properties"]) for value in _violations(schema) if name != "credentials.auth_type"]


@pytest.mark.parametrize("name, value", CASES, ids=[f"{name}={value!r}" for name, value in CASES])
def test_every_value_the_spec_refuses_is_refused_naming_the_field(name: str, value: Any) -> None:
    problems = config_problems(_with(name, value))

    assert problems and all(f"`{name}`" in problem for problem in problems), problems
    assert "For example" in problems[0] or name.startswith("credentials.client")


EXAMPLES = [
    (name, example)
    for name, schema in _fields(SPEC["properties"])
    for example in schema.get("examples", [])
    if "oneOf" not in schema and name != "credentials.auth_type"
]


@pytest.mark.parametrize("name, example", EXAMPLES, ids=[f"{name}={example!r}" for name, example in EXAMPLES])
def test_every_example_of_the_spec_is_accepted(name: str, example: Any) -> None:
    candidate = _with(name, example)
    if name in ("start_date", "end_date"):
        candidate = {**candidate, "start_date": "2023-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z", name: example}

    assert config_problems(candidate) == []


def test_a_required_field_left_out_is_named_with_its_description() -> None:
    candidate = config()
    del candidate["account_id"]

    assert config_problems(candidate) == [
        f"`account_id` is missing: {SPEC['properties']['account_id']['description']} For example: 64a5c0f3b7e1d2a9c8f0e123."
    ]


def test_a_secret_that_fails_its_pattern_is_named_but_never_repeated() -> None:
    problems = config_problems(_with("credentials.client_secret", "has spaces in it"))

    assert any("`credentials.client_secret`" in problem for problem in problems)
    assert not any("has spaces in it" in problem for problem in problems)


@pytest.mark.parametrize("end", ["2024-03-01T00:00:00Z", "2024-02-29T23:45:00Z"], ids=["equal", "before"])
def test_end_date_must_come_after_start_date(end: str) -> None:
    # Regression (issue 15): with `<` for `<=`, an end equal to the start was accepted.
    assert config_problems(config(start_date="2024-03-01T00:00:00Z", end_date=end)) == [
        "`end_date` must be after `start_date`: swap them or leave `end_date` empty to read up to now."
    ]


def test_a_start_date_within_the_quarter_hour_before_the_end_counts_as_the_quarter_hour() -> None:
    # The start is rounded down to 10:00, which is before the end: the check compares what the read will use.
    assert config_problems(config(start_date="2024-03-01T10:05:00Z", end_date="2024-03-01T10:01:00Z")) == []


@pytest.mark.parametrize("name, value", [("start_date", "2024-02-30T00:00:00Z"), ("end_date", "2024-13-01T00:00:00Z")])
def test_a_date_of_the_right_form_that_is_not_a_real_day_is_refused(name: str, value: str) -> None:
    (problem,) = config_problems(config(**{name: value}))

    assert problem.startswith(f"`{name}` must be a real UTC time")


def test_the_spec_patterns_are_what_the_check_enforces() -> None:
    # The check holds no pattern of its own: a value the pattern accepts passes, the same value spoilt fails.
    host_pattern = re.compile(SPEC["properties"]["host"]["pattern"])
    for host in ("platform.kore.ai", "http://127.0.0.1:8080", "http://platform.kore.ai"):
        accepted = bool(host_pattern.search(host))
        assert (config_problems(config(host=host)) == []) is accepted, host


def test_a_field_that_breaks_two_rules_in_the_same_words_is_explained_once() -> None:
    # Regression: `credentials: "abc"` failed both the `oneOf` and the `type`, and the message said it twice.
    problems = config_problems(config(credentials="abc"))

    assert len(problems) == len(set(problems)) and any("`credentials`" in problem for problem in problems)


def test_a_secret_pasted_in_place_of_the_credentials_object_is_not_repeated_back() -> None:
    # Regression: `credentials: "<the client secret>"` was echoed in the problem, hence in the TRACE and the logs.
    problems = config_problems(config(credentials="s3cr3t-pasted-here"))

    assert problems and not any("s3cr3t-pasted-here" in problem for problem in problems)
    assert any("`credentials` must be of type object" in problem for problem in problems)
