"""Builds the connector image with podman and runs `spec`, `check` and a short `read` in it.

The image is built from the repository's unchanged Dockerfile; the container reaches the bundled simulator
(started here on 127.0.0.1) through the host network, and reads its config and catalog from a read-only
mount. It asserts on what the connector prints: a SPEC, a CONNECTION_STATUS of SUCCEEDED, records, and a
STATE. How podman is made to work on these machines (runc, ulimits, a stand-in for `python:3.11-slim` built
with mmdebstrap, the CA bundle for pip) is explained in shared/docker-here.md.

Exit status: 0 when the smoke test passed, or when it cannot run here (one line `SKIPPED: <reason>`: no podman
and no way to install it, or a container cannot start in this sandbox); 1 when the image or the connector
in it fails. Everything it creates lives in a scratch folder under /tmp and is removed at the end, with the
podman side effects outside it. Called by tools/test.py after the pytest suites; alone, run it with the
connector's venv (the simulator needs its packages): `.venv/bin/python tools/docker_smoke.py`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/source-callvolume:smoke"
BASE_IMAGE = "docker.io/library/python:3.11-slim"
EXPECTED_USER = "airbyte"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PODMAN_PACKAGES = ["podman", "buildah", "runc", "mmdebstrap", "uidmap", "slirp4netns", "fuse-overlayfs"]
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Paths podman creates outside its configured storage (runtime state, the image layers' blob-info cache);
# removed afterwards unless they were there before.
PODMAN_LEFTOVERS = [Path("/run/libpod"), Path("/run/containers"), Path("/run/netns"), Path("/var/lib/containers")]
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

INSTALL_TIMEOUT_SECONDS = 300
BASE_IMAGE_TIMEOUT_SECONDS = 180
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
        ensure_podman()
        with PodmanSandbox() as podman:
            podman.make_base_image()
            podman.prove_containers_start()
            build_seconds = podman.build()
            size = int(podman.inspect("{{.Size}}"))
            print(f"docker smoke: built {IMAGE} in {build_seconds:.1f} s; image size {size / 1e6:.1f} MB ({size} bytes)")
            check_image_settings(podman)
            with SimulatorProcess() as config:
                run_connector(podman, config)
    except Skipped as reason:
        print(f"SKIPPED: {reason}")
        return 0
    except Failed as failure:
        print(f"docker smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"docker smoke: passed in {time.monotonic() - started:.0f} s (spec, check and read in the image)")
    return 0


def ensure_podman() -> None:
    """Installs podman and the tools around it with apt-get when they are missing and this is root."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Skipped(f"{', '.join(missing)} not installed, and installing needs root with apt-get.")
    print(f"docker smoke: installing {' '.join(PODMAN_PACKAGES)} with apt-get", flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PODMAN_PACKAGES]):
        try:
            result = subprocess.run(
                command, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            raise Skipped(f"`{' '.join(command[:2])}` did not finish within {INSTALL_TIMEOUT_SECONDS} s.")
        if result.returncode != 0:
            raise Skipped(f"`{' '.join(command[:2])}` failed: {_last_line(result.stderr or result.stdout)}")


class PodmanSandbox:
    """Podman with its storage, runtime state and configuration in a scratch folder of its own.

    runc instead of the default crun, which fails here with "cgroups in hybrid mode not supported", and
    explicit ulimits, because the defaults cannot be set in this sandbox.
    """

    def __enter__(self) -> "PodmanSandbox":
        self._leftovers_before = {path for path in PODMAN_LEFTOVERS if path.exists()}
        self._mounts_before = set(_mount_points())
        self._netavark_rules_before = _netavark_rules()
        self.scratch = Path(tempfile.mkdtemp(prefix="callvolume-docker-smoke-", dir="/tmp"))
        conf = self.scratch / "conf"
        conf.mkdir()
        (conf / "storage.conf").write_text(
            f'[storage]\ndriver="overlay"\ngraphroot="{self.scratch}/storage"\nrunroot="{self.scratch}/run"\n'
        )
        (conf / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits=["nofile=20000:20000","nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime="runc"\n'
            'cgroup_manager="cgroupfs"\n'
            f'tmp_dir="{self.scratch}/libpod"\n'
        )
        (conf / "auth.json").write_text('{"auths": {}}')
        self.environment = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
            "CONTAINERS_CONF": str(conf / "containers.conf"),
            "REGISTRY_AUTH_FILE": str(conf / "auth.json"),
        }
        return self

    def __exit__(self, *exc_info: object) -> None:
        for cleanup in (["rm", "--all", "--force"], ["rmi", "--all", "--force"]):
            self.podman(*cleanup, timeout=60, check=False)
        # Overlay layers podman could not release, and the bind mount on /run/netns that a network namespace
        # leaves; deepest first, so that a mount inside another comes off before it.
        ours = [
            mount for mount in set(_mount_points()) - self._mounts_before
            if mount.startswith(f"{self.scratch}/") or mount == "/run/netns"
        ]
        for mount in sorted(ours, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", mount], capture_output=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for path in PODMAN_LEFTOVERS:
            if path not in self._leftovers_before:
                shutil.rmtree(path, ignore_errors=True)
        if not self._netavark_rules_before:
            _remove_netavark_chains()

    def podman(self, *arguments: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(
                ["podman", *arguments], env=self.environment, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise Failed(f"`podman {arguments[0]}` did not finish within {timeout:.0f} s.")
        if check and result.returncode != 0:
            raise Failed(f"`podman {' '.join(arguments[:2])}` exited {result.returncode}: {_last_line(result.stderr)}")
        return result

    def make_base_image(self) -> None:
        """A stand-in for python:3.11-slim (Docker Hub is out of reach): Debian's Python 3.11 in a venv on PATH."""
        if shutil.which("mmdebstrap") is None:
            raise Skipped("mmdebstrap is not installed, so no base image can be made (Docker Hub is out of reach).")
        tarball = self.scratch / "base.tar"
        command = [
            "mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
            '--customize-hook=chroot "$1" python3 -m venv /opt/venv', "bookworm", str(tarball), _debian_mirror(),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=BASE_IMAGE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise Skipped(f"making the base image with mmdebstrap took over {BASE_IMAGE_TIMEOUT_SECONDS} s.")
        if result.returncode != 0:
            raise Skipped(f"mmdebstrap could not make the base image: {_last_line(result.stderr)}")
        imported = self.podman(
            "import",
            "--change", "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change", 'CMD ["python3"]',
            str(tarball), BASE_IMAGE,
            timeout=BASE_IMAGE_TIMEOUT_SECONDS, check=False,
        )
        tarball.unlink()
        if imported.returncode != 0:
            raise Skipped(f"podman cannot import an image here: {_last_line(imported.stderr)}")

    def prove_containers_start(self) -> None:
        """Tells a sandbox that cannot run containers at all apart from a broken image."""
        probe = self.podman(
            "run", "--rm", "--network=host", BASE_IMAGE, "python3", "-c", "pass",
            timeout=CONNECTOR_TIMEOUT_SECONDS, check=False,
        )
        if probe.returncode != 0:
            raise Skipped(f"a container cannot start in this sandbox: {_last_line(probe.stderr)}")

    def build(self) -> float:
        """Builds the image and returns how long it took; pip in the build trusts the host's CA bundle."""
        ca_mount = []
        if HOST_CA_BUNDLE.exists():
            # Mounted for the build only: PyPI is reached through a TLS-inspecting proxy; the image stays clean.
            ca_mount = ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
        started = time.monotonic()
        self.podman(
            "build", "--pull=never", "--network=host", *ca_mount, "--tag", IMAGE, str(ROOT),
            timeout=BUILD_TIMEOUT_SECONDS,
        )
        return time.monotonic() - started

    def inspect(self, template: str) -> str:
        return self.podman("image", "inspect", "--format", template, IMAGE, timeout=30).stdout.strip()

    def run_connector(self, mount: Path, *arguments: str) -> list[dict]:
        """Runs the image's entry point and returns the Airbyte messages it printed."""
        result = self.podman(
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


def check_image_settings(podman: PodmanSandbox) -> None:
    user = podman.inspect("{{.Config.User}}")
    if user != EXPECTED_USER:
        raise Failed(f"the image runs as user {user!r}, not {EXPECTED_USER!r}.")
    environment = podman.inspect("{{json .Config.Env}}")
    if "AIRBYTE_ENTRYPOINT=source-callvolume" not in json.loads(environment):
        raise Failed(f"the image does not set AIRBYTE_ENTRYPOINT=source-callvolume: {environment}")


def run_connector(podman: PodmanSandbox, config: dict) -> None:
    mount = podman.scratch / "secrets"
    mount.mkdir()
    (mount / "config.json").write_text(json.dumps(config))
    (mount / "catalog.json").write_text(json.dumps(CATALOG))
    # The connector runs as an unprivileged user: it must be able to read the mounted files.
    mount.chmod(0o755)
    for file in mount.iterdir():
        file.chmod(0o644)

    spec = _of_type(podman.run_connector(mount, "spec"), "SPEC")
    if len(spec) != 1 or "connectionSpecification" not in spec[0]["spec"]:
        raise Failed(f"`spec` printed {len(spec)} SPEC messages, expected one with a connectionSpecification.")
    print("docker smoke: spec printed the SPEC message")

    statuses = _of_type(podman.run_connector(mount, "check", "--config", "/secrets/config.json"), "CONNECTION_STATUS")
    if [status["connectionStatus"]["status"] for status in statuses] != ["SUCCEEDED"]:
        raise Failed(f"`check` answered {[status['connectionStatus'] for status in statuses]}, expected SUCCEEDED.")
    print("docker smoke: check answered SUCCEEDED")

    messages = podman.run_connector(
        mount, "read", "--config", "/secrets/config.json", "--catalog", "/secrets/catalog.json"
    )
    records, states = _of_type(messages, "RECORD"), _of_type(messages, "STATE")
    if not records or not states:
        raise Failed(f"`read` printed {len(records)} records and {len(states)} states; expected some of each.")
    print(f"docker smoke: read printed {len(records)} records and {len(states)} states")


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


def _of_type(messages: list[dict], message_type: str) -> list[dict]:
    return [message for message in messages if message.get("type") == message_type]


def _errors(messages: list[dict]) -> str:
    traces = [message["trace"].get("error", {}).get("message", "") for message in _of_type(messages, "TRACE")]
    return " | ".join(trace for trace in traces if trace)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _mount_points() -> list[str]:
    # /proc/mounts rather than os.path.ismount: a bind mount of a folder onto itself is invisible to the latter.
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]


def _debian_mirror() -> str:
    if DEBIAN_SOURCES.exists():
        for line in DEBIAN_SOURCES.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return DEFAULT_MIRROR


def _netavark_rules() -> dict[str, list[str]]:
    """The iptables rules that mention NETAVARK, by table (podman's bridge networks create them)."""
    if shutil.which("iptables") is None:
        return {}
    rules = {}
    for table in ("nat", "filter"):
        listing = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        mentions = [rule for rule in listing.stdout.splitlines() if "NETAVARK" in rule]
        if mentions:
            rules[table] = mentions
    return rules


def _remove_netavark_chains() -> None:
    """Removes NETAVARK rules and chains; called only when there were none before, so all are this run's."""
    for table, rules in _netavark_rules().items():
        for rule in rules:
            if rule.startswith("-A "):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
        for rule in rules:
            if rule.startswith("-N "):
                chain = rule.split()[1]
                subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)

if __name__ == "__main__":
    sys.exit(main())
