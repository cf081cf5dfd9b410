"""Pins how the connector is shipped the Airbyte way: metadata.yaml, the Dockerfile and setup.py agree.

- metadata.yaml loads with the CDK's own `MetadataFile` model and says what Airbyte's registry needs: a source
  of subtype api, a fixed definition id, the docker repository, tags, and allowed hosts taken from the `host`
  config field.
- One version everywhere: setup.py's VERSION, metadata.yaml's dockerImageTag and the Dockerfile's
  io.airbyte.version label (and the image name agrees with the docker repository).
- The Dockerfile runs the connector as a non-root user, sets AIRBYTE_ENTRYPOINT to the console script that
  setup.py installs, and its build context holds only setup.py, constraints.txt and the package.
- One set of dependency versions: constraints.txt pins every dependency exactly (airbyte-cdk at the version
  setup.py pins), each pin satisfies what setup.py asks for, and both dev.py and the Dockerfile install
  under it (the image without extras).
"""

from __future__ import annotations

import ast
import json
import runpy
import shlex
import uuid
from pathlib import Path

import pytest
import yaml
from airbyte_cdk.models.connector_metadata import ConnectorLanguage, MetadataFile
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = "source-callvolume"
PROJECT = "source-callvolume"
CDK_PIN = "airbyte-cdk==7.39.1"


def setup_py_version() -> str:
    """VERSION as setup.py assigns it, read without running setup()."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "VERSION" for target in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py assigns no VERSION")


def setup_py_keyword(keyword: str):
    """A literal keyword argument of setup.py's setup() call, read without running it."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for argument in node.keywords:
                if argument.arg == keyword:
                    return ast.literal_eval(argument.value)
    raise AssertionError(f"setup.py's setup() has no {keyword}=")


def constraint_lines() -> list[str]:
    return [
        line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def constraint_pins() -> dict[str, Version]:
    """constraints.txt as {canonical name: pinned version}."""
    pins = {}
    for line in constraint_lines():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


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


def test_dockerfile_installs_the_package_alone_under_the_constraints_file():
    copies = [shlex.split(arguments) for keyword, arguments in dockerfile_instructions() if keyword == "COPY"]
    assert any("constraints.txt" in copy[:-1] and copy[-1] in ("./", ".") for copy in copies), (
        "the Dockerfile does not COPY constraints.txt into its working directory"
    )
    installs = [
        shlex.split(arguments.split("&&")[0]) for keyword, arguments in dockerfile_instructions()
        if keyword == "RUN" and "pip install" in arguments
    ]
    assert len(installs) == 1, "expected one `pip install` in the Dockerfile"
    words = installs[0]
    constraint_files = [
        words[index + 1] for index, word in enumerate(words[:-1]) if word in ("--constraint", "-c")
    ] + [word.split("=", 1)[1] for word in words if word.startswith("--constraint=")]
    assert constraint_files == ["constraints.txt"], f"the image's pip install is not under constraints.txt: {words}"
    assert words[-1] == ".", f"the image should install the package itself, without extras: {words}"


def test_setup_py_and_constraints_pin_the_same_airbyte_cdk():
    assert CDK_PIN in setup_py_keyword("install_requires")
    assert CDK_PIN in constraint_lines()


def test_constraints_pin_every_dependency_exactly_once_and_not_the_project():
    lines = constraint_lines()
    for line in lines:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras and requirement.marker is None, line
    names = [canonicalize_name(Requirement(line).name) for line in lines]
    assert len(names) == len(set(names)), "a package is pinned twice in constraints.txt"
    assert canonicalize_name(PROJECT) not in names


def test_every_requirement_of_setup_py_is_pinned_within_its_range():
    pins = constraint_pins()
    requirements = list(setup_py_keyword("install_requires"))
    for extra in setup_py_keyword("extras_require").values():
        requirements += extra
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (setup.py) is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside setup.py's {line!r}"
        )


def test_dev_py_installs_every_environment_of_the_connector_under_the_constraints():
    dev = runpy.run_path(str(ROOT / "dev.py"), run_name="dev_py")  # standard library only; main() not run
    for environment in (dev["CONNECTOR"], dev["MUTATION"]):
        arguments = list(environment.pip_install_arguments)
        assert arguments[arguments.index("--constraint") + 1] == str(ROOT / "constraints.txt")
        assert "constraints.txt" in environment.install_inputs, "a change of constraints.txt must reinstall"


def test_build_context_holds_only_setup_py_constraints_and_the_package():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the .dockerignore should exclude everything, then let the package back in"
    assert {pattern for pattern in patterns if pattern.startswith("!")} == {
        "!setup.py", "!constraints.txt", "!source_callvolume/",
    }
