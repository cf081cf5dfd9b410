"""Pins the spec's form: every field has a title, description, order and examples, and every example (and
default) passes the field's own pattern and bounds, so the examples Airbyte's UI shows are usable values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parent.parent / "source_callvolume" / "manifest.yaml"


def _fields(properties: dict, path: str = "") -> Iterator[Tuple[str, dict]]:
    for name, field in properties.items():
        yield f"{path}{name}", field
        for option in field.get("oneOf", []):
            yield from _fields(option["properties"], f"{path}{name}.")


SPEC = yaml.safe_load(MANIFEST.read_text())["spec"]["connection_specification"]
FIELDS = list(_fields(SPEC["properties"]))


@pytest.mark.parametrize("name, field", FIELDS, ids=[name for name, _ in FIELDS])
def test_every_field_has_title_description_order_and_examples(name: str, field: dict) -> None:
    keys = {"title", "description", "order"} if field.get("type") == "object" else {"title", "description", "order", "examples"}
    assert keys <= field.keys(), f"{name} lacks {keys - field.keys()}"


def _acceptable(field: dict, value: Any) -> bool:
    if "pattern" in field and not re.search(field["pattern"], value):
        return False
    if "const" in field and value != field["const"]:
        return False
    if "minimum" in field and value < field["minimum"]:
        return False
    if "maximum" in field and value > field["maximum"]:
        return False
    return "multipleOf" not in field or value % field["multipleOf"] == 0


@pytest.mark.parametrize("name, field", FIELDS, ids=[name for name, _ in FIELDS])
def test_examples_and_default_pass_the_fields_own_pattern_and_bounds(name: str, field: dict) -> None:
    values = [*field.get("examples", []), *([field["default"]] if "default" in field else [])]
    assert all(_acceptable(field, value) for value in values), name
