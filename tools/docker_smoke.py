"""Builds the connector image and runs `spec`, `check` and a short `read` in it, with docker or podman.

The image is built from the repository's unchanged Dockerfile; the container reaches the bundled simulator
(started here on 127.0.0.1) through the host network, and reads its config and catalog from a read-only
mount. It asserts on the image (a non-root user, AIRBYTE_ENTRYPOINT) and on what the connector prints: a
SPEC, a CONNECTION_STATUS of SUCCEEDED, records, and a STATE.

The engine: docker when its daemon answers, else podman when it is installed; DOCKER_SMOKE_ENGINE=docker,
podman or none chooses. The base image `python:3.11-slim` must be there already or be pullable.

This script never changes the machine: it installs nothing and configures nothing. What it creates lives in
a scratch folder of its own, removed at the end:
- podman: its storage, runtime state, network configuration and temporary files are in the scratch folder
  (CONTAINERS_STORAGE_CONF, --tmpdir, --network-config-dir, TMPDIR); a base image it has to pull goes there
  too, and goes with it. The storage podman is configured with (CONTAINERS_STORAGE_CONF, or podman's
  default) is only read, as an additional image store, to find the base image. As root, podman runs in a
  private mount namespace in which /run and /var are overlays whose upper layers are in the scratch folder:
  rootful podman writes a blob-info cache under /var/lib/containers, a lock under /var/cache/containers and
  a folder under /run/containers whatever it is configured with; those writes, and every mount podman
  makes, end with the namespace. Containers use the host network, so no network (netavark, iptables) is
  made. CONTAINERS_CONF (runtime, ulimits) is used as it is: on this project's CI machine
  `.ci/prepare-podman` writes it (docs/container-image.md).
- docker: the daemon keeps what it builds (and a base image it pulls); the smoke image is removed at the end.

Exit status: 0 when the smoke test passed, or when it cannot run here: then it prints exactly one line
`SKIPPED: <reason>` (no engine, no base image, a container cannot start, or SKIP_DOCKER_SMOKE is set).
1 when the image or the connector in it fails, and also for a reason to skip when DOCKER_SMOKE_REQUIRED is
set (CI sets it once it has made podman work). Called by tools/test.py after the pytest suites; alone, run
it with the connector's venv (the simulator needs its packages): `.venv/bin/python tools/docker_smoke.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/source-callvolume:smoke"
BASE_IMAGE = "docker.io/library/python:3.11-slim"
EXPECTED_USER = "airbyte"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ENGINES = ("docker", "podman")
# Set, with the scratch folder, on the copy of this script that runs inside the private mount namespace.
NAMESPACE_SCRATCH_VARIABLE = "_DOCKER_SMOKE_NAMESPACE_SCRATCH"
# Where rootful podman writes whatever its configuration: overlaid inside the namespace (see the docstring).
OVERLAID_FOLDERS = (Path("/run"), Path("/var"))
# A small read: the simulator's 2 queues over 2 days, about 380 rows.
SIMULATOR_ARGUMENTS = ["--queues", "2", "--days", "2"]
CATALOG = {
    "streams": [
        {
            "stream": {
                "name": "call_volume",
                "json_schema": {},
                "supported_sync_modes": ["full_refresh", "incremental"],
            },
            "sync_mode": "incremental",
            "destination_sync_mode": "append_dedup",
            "cursor_field": ["intervalEndTimeStamp"],
            "primary_key": [["_id"]],
        }
    ]
}

PROBE_TIMEOUT_SECONDS = 30
PULL_TIMEOUT_SECONDS = 180
BUILD_TIMEOUT_SECONDS = 300
CONNECTOR_TIMEOUT_SECONDS = 120


class Skipped(Exception):
    """The smoke test cannot run on this machine; not a failure of the connector."""


class Failed(Exception):
    """The image or the connector in it misbehaved."""


def main() -> int:
    if os.environ.get("SKIP_DOCKER_SMOKE"):
        print("SKIPPED: SKIP_DOCKER_SMOKE is set.")
        return 0
    started = time.monotonic()
    try:
        namespace_scratch = os.environ.get(NAMESPACE_SCRATCH_VARIABLE)
        if namespace_scratch:
            overlay_folders(Path(namespace_scratch))
            smoke_test(Podman(Path(namespace_scratch)))
        else:
            engine = choose_engine()
            if engine == "podman" and os.geteuid() == 0:
                return run_in_private_mount_namespace()
            with tempfile.TemporaryDirectory(prefix="callvolume-docker-smoke-", ignore_cleanup_errors=True) as scratch:
                smoke_test(Podman(Path(scratch)) if engine == "podman" else Docker(Path(scratch)))
    except Skipped as reason:
        if os.environ.get("DOCKER_SMOKE_REQUIRED"):
            print(f"docker smoke: FAILED: DOCKER_SMOKE_REQUIRED is set, but the test cannot run: {reason}", file=sys.stderr)
            return 1
        print(f"SKIPPED: {reason}")
        return 0
    except Failed as failure:
        print(f"docker smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"docker smoke: passed in {time.monotonic() - started:.0f} s (spec, check and read in the image)")
    return 0


def choose_engine() -> str:
    """docker when its daemon answers, else podman when installed; DOCKER_SMOKE_ENGINE overrides."""
    wanted = os.environ.get("DOCKER_SMOKE_ENGINE", "").strip().lower()
    if wanted == "none":
        raise Skipped("DOCKER_SMOKE_ENGINE=none: no container engine to be used.")
    if wanted and wanted not in ENGINES:
        raise Failed(f"DOCKER_SMOKE_ENGINE={wanted!r}: expected docker, podman or none.")
    reasons = []
    for engine in [wanted] if wanted else ENGINES:
        if shutil.which(engine) is None:
            reasons.append(f"{engine} is not installed")
        elif engine == "podman":
            return engine
        elif "podman" in _run_quietly(["docker", "--version"]).stdout.lower():
            # podman-docker's `docker`: podman itself, with the configuration this script would not give it.
            reasons.append("docker is podman's docker command")
        else:
            answer = _run_quietly(["docker", "info", "--format", "{{.ServerVersion}}"])
            if answer.returncode == 0:
                return engine
            reasons.append(f"docker's daemon does not answer ({_last_line(answer.stderr)})")
    raise Skipped(f"no container engine: {'; '.join(reasons)}.")


def run_in_private_mount_namespace() -> int:
    """Runs this script again in a private mount namespace (rootful podman); its output passes through."""
    if shutil.which("unshare") is None:
        raise Skipped("rootful podman needs `unshare` (util-linux) to keep its side effects off the machine.")
    probe = _run_quietly(["unshare", "--mount", "--propagation", "private", "true"])
    if probe.returncode != 0:
        raise Skipped(f"rootful podman needs a private mount namespace, and none can be made here: {_last_line(probe.stderr)}")
    # The scratch folder must lie outside the overlaid folders, whose upper layers it holds.
    parent = Path(tempfile.gettempdir()).resolve()
    if any(parent.is_relative_to(folder) for folder in OVERLAID_FOLDERS):
        parent = Path("/tmp")
    with tempfile.TemporaryDirectory(prefix="callvolume-docker-smoke-", dir=parent) as scratch:
        inner = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", sys.executable, str(Path(__file__).resolve())],
            env={**os.environ, NAMESPACE_SCRATCH_VARIABLE: scratch}, stdin=subprocess.DEVNULL,
        )
        # The namespace, and with it every mount made in it, is gone: the scratch folder can be removed.
    if inner.returncode not in (0, 1):
        print(f"docker smoke: FAILED: the smoke test in its mount namespace exited {inner.returncode}", file=sys.stderr)
        return 1
    return inner.returncode


def overlay_folders(scratch: Path) -> None:
    """Inside the private mount namespace: overlays whose writes land in the scratch folder."""
    for folder in OVERLAID_FOLDERS:
        layers = scratch / "overlays" / folder.name
        (layers / "upper").mkdir(parents=True)
        (layers / "work").mkdir()
        options = f"lowerdir={folder},upperdir={layers / 'upper'},workdir={layers / 'work'}"
        result = _run_quietly(["mount", "-t", "overlay", "overlay", "-o", options, str(folder)])
        if result.returncode != 0:
            raise Skipped(f"cannot overlay {folder} in a private mount namespace: {_last_line(result.stderr)}")


def smoke_test(engine: Engine) -> None:
    engine.prepare()
    try:
        build_seconds = engine.build()
        size = int(engine.inspect("{{.Size}}"))
        print(
            f"docker smoke: {engine.name} built {IMAGE} in {build_seconds:.1f} s; "
            f"image size {size / 1e6:.1f} MB ({size} bytes)",
            flush=True,
        )
        check_image_settings(engine)
        with SimulatorProcess() as config:
            run_connector(engine, config)
    finally:
        engine.remove_image()


class Engine:
    """A container engine's command line, with what this test needs of it."""

    name = ""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.command = [self.name]
        self.environment = dict(os.environ)

    def run(self, *arguments: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(
                [*self.command, *arguments], env=self.environment, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise Failed(f"`{self.name} {arguments[0]}` did not finish within {timeout:.0f} s.")
        if check and result.returncode != 0:
            raise Failed(f"`{self.name} {' '.join(arguments[:2])}` exited {result.returncode}: {_last_line(result.stderr)}")
        return result

    def prepare(self) -> None:
        """Makes sure the engine works and the base image is there (pulled if need be); or raises Skipped."""
        probe = self.run("info", timeout=PROBE_TIMEOUT_SECONDS, check=False)
        if probe.returncode != 0:
            raise Skipped(f"{self.name} does not work here: {_last_line(probe.stderr)}")
        if self.run("image", "inspect", BASE_IMAGE, timeout=PROBE_TIMEOUT_SECONDS, check=False).returncode != 0:
            print(f"docker smoke: {BASE_IMAGE} is not here; pulling it with {self.name}", flush=True)
            pulled = self.run("pull", "--quiet", BASE_IMAGE, timeout=PULL_TIMEOUT_SECONDS, check=False)
            if pulled.returncode != 0:
                raise Skipped(
                    f"the base image {BASE_IMAGE} is not available locally and cannot be pulled "
                    f"({self.name}: {_last_line(pulled.stderr)})"
                )
        # Tells an engine that cannot start containers at all apart from a broken image.
        probe = self.run(
            "run", "--rm", "--network=host", BASE_IMAGE, "python3", "-c", "pass",
            timeout=CONNECTOR_TIMEOUT_SECONDS, check=False,
        )
        if probe.returncode != 0:
            raise Skipped(f"a container cannot start with {self.name} here: {_last_line(probe.stderr)}")

    def build_arguments(self) -> list[str]:
        return []

    def build(self) -> float:
        """Builds the image and returns how long it took."""
        started = time.monotonic()
        self.run("build", *self.build_arguments(), "--tag", IMAGE, str(ROOT), timeout=BUILD_TIMEOUT_SECONDS)
        return time.monotonic() - started

    def inspect(self, template: str) -> str:
        return self.run("image", "inspect", "--format", template, IMAGE, timeout=PROBE_TIMEOUT_SECONDS).stdout.strip()

    def remove_image(self) -> None:
        self.run("rmi", "--force", IMAGE, timeout=60, check=False)

    def run_connector(self, mount: Path, *arguments: str) -> list[dict]:
        """Runs the image's entry point and returns the Airbyte messages it printed."""
        result = self.run(
            "run", "--rm", "--network=host", "--volume", f"{mount}:/secrets:ro", IMAGE, *arguments,
            timeout=CONNECTOR_TIMEOUT_SECONDS, check=False,
        )
        messages = []
        for line in result.stdout.splitlines():
            try:
                messages.append(json.loads(line))
            except ValueError:
                raise Failed(f"`{arguments[0]}` printed a line that is not an Airbyte message: {line[:200]!r}")
        if result.returncode != 0:
            raise Failed(f"`{arguments[0]}` exited {result.returncode}: {_errors(messages) or _last_line(result.stderr)}")
        return messages


class Docker(Engine):
    """The docker CLI and the daemon it reaches: images live in the daemon."""

    name = "docker"


class Podman(Engine):
    """podman with its storage, runtime state and temporary files in the scratch folder."""

    name = "podman"

    def __init__(self, scratch: Path) -> None:
        super().__init__(scratch)
        storage_conf = scratch / "storage.conf"
        stores = [f'"{store}"' for store in [configured_image_store()] if store is not None]
        storage_conf.write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{scratch}/storage"\nrunroot = "{scratch}/run"\n'
            f"[storage.options]\nadditionalimagestores = [{', '.join(stores)}]\n"
        )
        (scratch / "tmp").mkdir()
        self.command = [
            "podman", "--tmpdir", str(scratch / "libpod"), "--network-config-dir", str(scratch / "networks"),
            "--events-backend", "none",
        ]
        self.environment.update(CONTAINERS_STORAGE_CONF=str(storage_conf), TMPDIR=str(scratch / "tmp"))
        if os.geteuid() != 0:
            # Rootless podman keeps its blob-info cache under XDG_DATA_HOME.
            self.environment["XDG_DATA_HOME"] = str(scratch / "xdg-data")

    def build_arguments(self) -> list[str]:
        arguments = ["--pull=never", "--network=host"]
        if HOST_CA_BUNDLE.exists():
            # pip in the build trusts the host's CA bundle (PyPI may be reached through a TLS-inspecting proxy);
            # mounted for the build only, so the image stays clean.
            arguments += ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
        return arguments

    def remove_image(self) -> None:
        """The whole storage is in the scratch folder; rootless, its files belong to subordinate user ids."""
        if os.geteuid() != 0:
            self.run("unshare", "rm", "-rf", str(self.scratch / "storage"), str(self.scratch / "run"), timeout=60, check=False)


def configured_image_store() -> Path | None:
    """The overlay storage podman is configured with (CONTAINERS_STORAGE_CONF or its default), if it has images.

    Read only, as an additional image store: where `podman pull` or `.ci/prepare-podman` put the base image.
    """
    rootless = os.geteuid() != 0
    home = Path.home()
    user_conf = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "containers" / "storage.conf"
    if os.environ.get("CONTAINERS_STORAGE_CONF"):
        candidates = [Path(os.environ["CONTAINERS_STORAGE_CONF"])]
    else:
        candidates = ([user_conf] if rootless else []) + [
            Path("/etc/containers/storage.conf"), Path("/usr/share/containers/storage.conf"),
        ]
    conf_path = next((path for path in candidates if path.is_file()), None)
    try:
        storage = tomllib.loads(conf_path.read_text()).get("storage", {}) if conf_path else {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if rootless:
        default = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "containers" / "storage"
        # A system-wide file's graphroot is root's; a user's own (or CONTAINERS_STORAGE_CONF) is the user's.
        own_graphroot = conf_path is not None and not str(conf_path).startswith(("/etc/", "/usr/"))
        graphroot = storage.get("rootless_storage_path") or (own_graphroot and storage.get("graphroot")) or default
    else:
        graphroot = storage.get("graphroot") or "/var/lib/containers/storage"
    store = Path(os.path.expanduser(str(graphroot)))
    if storage.get("driver", "overlay") != "overlay" or not (store / "overlay-images").is_dir():
        return None
    return store


def check_image_settings(engine: Engine) -> None:
    user = engine.inspect("{{.Config.User}}")
    if user.split(":")[0] in ("", "root", "0"):
        raise Failed(f"the image runs as root (user {user!r}).")
    if user != EXPECTED_USER:
        raise Failed(f"the image runs as user {user!r}, not {EXPECTED_USER!r}.")
    environment = engine.inspect("{{json .Config.Env}}")
    if "AIRBYTE_ENTRYPOINT=source-callvolume" not in json.loads(environment):
        raise Failed(f"the image does not set AIRBYTE_ENTRYPOINT=source-callvolume: {environment}")
    print(f"docker smoke: the image runs as {user!r} and sets AIRBYTE_ENTRYPOINT", flush=True)


def run_connector(engine: Engine, config: dict) -> None:
    mount = engine.scratch / "secrets"
    mount.mkdir()
    (mount / "config.json").write_text(json.dumps(config))
    (mount / "catalog.json").write_text(json.dumps(CATALOG))
    # The connector runs as an unprivileged user: it must be able to read the mounted files.
    mount.chmod(0o755)
    for file in mount.iterdir():
        file.chmod(0o644)

    spec = _of_type(engine.run_connector(mount, "spec"), "SPEC")
    if len(spec) != 1 or "connectionSpecification" not in spec[0]["spec"]:
        raise Failed(f"`spec` printed {len(spec)} SPEC messages, expected one with a connectionSpecification.")
    print("docker smoke: spec printed the SPEC message", flush=True)

    statuses = _of_type(engine.run_connector(mount, "check", "--config", "/secrets/config.json"), "CONNECTION_STATUS")
    if [status["connectionStatus"]["status"] for status in statuses] != ["SUCCEEDED"]:
        raise Failed(f"`check` answered {[status['connectionStatus'] for status in statuses]}, expected SUCCEEDED.")
    print("docker smoke: check answered SUCCEEDED", flush=True)

    messages = engine.run_connector(
        mount, "read", "--config", "/secrets/config.json", "--catalog", "/secrets/catalog.json"
    )
    records, states = _of_type(messages, "RECORD"), _of_type(messages, "STATE")
    if not records or not states:
        raise Failed(f"`read` printed {len(records)} records and {len(states)} states; expected some of each.")
    print(f"docker smoke: read printed {len(records)} records and {len(states)} states", flush=True)


class SimulatorProcess:
    """`python -m simulator` on the host; the container reaches it on 127.0.0.1 through the host network."""

    def __enter__(self) -> dict:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", "0", *SIMULATOR_ARGUMENTS],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, text=True,
        )
        # The simulator prints its line as soon as it listens, or exits (ending stdout) if it cannot start.
        first_line = self._process.stdout.readline()  # type: ignore[union-attr]
        if not first_line:
            self.__exit__()
            raise Failed("the simulator did not start (see its error above).")
        return json.loads(first_line)["config"]

    def __exit__(self, *exc_info: object) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _run_quietly(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", f"no answer within {PROBE_TIMEOUT_SECONDS} s")


def _of_type(messages: list[dict], message_type: str) -> list[dict]:
    return [message for message in messages if message.get("type") == message_type]


def _errors(messages: list[dict]) -> str:
    traces = [message["trace"].get("error", {}).get("message", "") for message in _of_type(messages, "TRACE")]
    return " | ".join(trace for trace in traces if trace)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


if __name__ == "__main__":
    sys.exit(main())
