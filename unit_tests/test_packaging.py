"""Pins how the connector is shipped the Airbyte way: metadata.yaml, the Dockerfile and setup.py agree.

- metadata.yaml loads with the CDK's own `MetadataFile` model and says what Airbyte's registry needs: a source
  of subtype api, a fixed definition id, the docker repository, tags, and allowed hosts taken from the `host`
  config field.
- One version everywhere: setup.py's VERSION, metadata.yaml's dockerImageTag and the Dockerfile's
  io.airbyte.version label (and the image name agrees with the docker repository).
- The Dockerfile runs the connector as a non-root user, sets AIRBYTE_ENTRYPOINT to the console script that
  setup.py installs, and its build context holds only setup.py and the package.
"""

from __future__ import annotations

import ast
import json
import shlex
import uuid
from pathlib import Path

import pytest
import yaml
from airbyte_cdk.models.connector_metadata import ConnectorLanguage, MetadataFile

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = "source-callvolume"


def setup_py_version() -> str:
    """VERSION as setup.py assigns it, read without running setup()."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "VERSION" for target in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py assigns no VERSION")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_pairs(instruction: str) -> dict[str, str]:
    """KEY=value pairs of every LABEL or ENV instruction, quotes removed."""
    pairs = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == instruction:
            pairs.update(word.split("=", 1) for word in shlex.split(arguments))
    return pairs


@pytest.fixture(scope="module")
def metadata() -> MetadataFile:
    return MetadataFile.from_file(ROOT / "metadata.yaml")


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load((ROOT / "source_callvolume" / "manifest.yaml").read_text())["spec"]


def test_metadata_loads_with_the_cdk_model_as_a_low_code_python_api_source(metadata):
    data = metadata.data
    assert data.dockerRepository == "airbyte/source-callvolume"
    assert data.language == ConnectorLanguage.PYTHON
    assert {"language:python", "cdk:low-code"} <= set(data.tags)
    extra = data.model_extra
    assert (extra["connectorType"], extra["connectorSubtype"]) == ("source", "api")
    assert uuid.UUID(extra["definitionId"]).version == 4
    for field in ("name", "releaseStage", "supportLevel", "license", "registryOverrides", "remoteRegistries"):
        assert extra.get(field), f"metadata.yaml lacks data.{field}"


def test_metadata_allows_only_the_configured_host(metadata, spec):
    assert metadata.data.model_extra["allowedHosts"] == {"hosts": ["${host}"]}
    assert "host" in spec["connection_specification"]["properties"]


def test_metadata_documentation_url_is_the_one_the_spec_gives(metadata, spec):
    assert metadata.data.model_extra["documentationUrl"] == spec["documentation_url"]


def test_one_version_in_setup_py_metadata_and_the_image_label(metadata):
    assert setup_py_version() == metadata.data.dockerImageTag == dockerfile_pairs("LABEL")["io.airbyte.version"]


def test_image_name_label_is_the_docker_repository(metadata):
    assert dockerfile_pairs("LABEL")["io.airbyte.name"] == metadata.data.dockerRepository


def test_dockerfile_runs_the_connector_as_a_non_root_user():
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users, "the Dockerfile sets no USER, so the connector would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_entry_point_is_the_installed_console_script():
    assert dockerfile_pairs("ENV")["AIRBYTE_ENTRYPOINT"] == CONSOLE_SCRIPT
    entrypoints = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == [CONSOLE_SCRIPT]
    assert f"{CONSOLE_SCRIPT}=" in (ROOT / "setup.py").read_text()


def test_dockerfile_installs_the_package_without_tests_or_pip_cache():
    runs = " ".join(arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN")
    assert "pip install --no-cache-dir" in runs
    assert "[tests]" not in runs


def test_build_context_holds_only_setup_py_and_the_package():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the .dockerignore should exclude everything, then let the package back in"
    assert {pattern for pattern in patterns if pattern.startswith("!")} == {"!setup.py", "!source_callvolume/"}
