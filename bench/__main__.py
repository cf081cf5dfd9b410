"""Benchmark: the installed connector against a plain `requests` loop, on the bundled simulator.

    python -m bench                       # about 2 minutes
    python -m bench --quick               # smaller data, one round: under 20 s, numbers indicative only
    python -m bench --connector PATH      # another build's source-callvolume, e.g. from a scratch venv

Run it from the repository root with the venv's python (`.venv/bin/python -m bench`). Each scenario starts a
simulator in a process of its own (`bench.serve`) and runs the clients in turns (A/B/A/B...), so that whatever
else the machine is doing hits every client alike; the goals use the median of the rounds.

- throughput: a full refresh of 165k rows (16 queues, 120 days) at the default page size, no latency: the
  connector with its default config against `bench.raw_loop`. Goal: connector wall <= 8x the loop's.
- memory: the same, first 12 days only (16.5k rows). Goal: the connector's peak RSS at 165k rows <= 1.3x
  its peak at 16.5k.
- latency: every answer 100 ms late, pages capped at 100 rows, 60 days of 4 queues (240 requests): the
  connector's default config (8 workers) against `num_workers: 1`, one request at a time. Goal: >= 5x faster.

Columns:
- rows: RECORD lines on the client's stdout, counted here from the pipe: the connector serialises and
  writes every record, as it would for a destination.
- wall: from spawning the client to reaping it, start-up included.
- CPU s, RSS MiB: the client's own user+sys time and peak resident set, from `os.wait4` on its pid (the
  per-child form of `getrusage(RUSAGE_CHILDREN)`: the simulator and the other runs are not mixed in).
- requests: what the simulator answered while the client ran, retried ones included, counted by the server.
- states: STATE messages on the client's stdout (the raw loop writes none).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

import orjson

from source_callvolume.components import format_utc
from testkit import configured_catalog, utc

ROOT = Path(__file__).resolve().parent.parent
CATALOG = configured_catalog("full_refresh")
KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux
PIPE_CHUNK_BYTES = 1 << 20

GOAL_LATENCY_SPEEDUP = 5.0
# On the stock CDK (issue 9); the CDK-patching shortcuts that reached 3x are gone.
GOAL_WALL_RATIO = 8.0
GOAL_RSS_RATIO = 1.3


@dataclass(frozen=True)
class Sizes:
    """How much each scenario reads, and how many rounds of each client it runs."""

    throughput_rounds: int
    throughput_queues: int
    throughput_days: int
    memory_days: int
    latency_rounds: int
    latency_queues: int
    latency_days: int


FULL = Sizes(throughput_rounds=3, throughput_queues=16, throughput_days=120, memory_days=12,
             latency_rounds=2, latency_queues=4, latency_days=60)
QUICK = Sizes(throughput_rounds=1, throughput_queues=16, throughput_days=30, memory_days=3,
              latency_rounds=1, latency_queues=2, latency_days=20)


@dataclass(frozen=True)
class Client:
    """A command to benchmark, and what it changes in the simulator's config."""

    name: str
    command: Callable[[Path], list[str]]
    config_overrides: dict = field(default_factory=dict)


@dataclass
class Run:
    client: str
    round: int
    rows: int
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    requests: int
    retried: int
    states: int
    exit_code: int
    problem: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s


class SimulatorProcess:
    """`bench.serve` as a child process: its config, and the requests it has answered so far."""

    def __init__(self, queues: int, days: int, page_cap: Optional[int] = None, latency: float = 0.0):
        command = [sys.executable, "-m", "bench.serve", "--queues", str(queues), "--days", str(days),
                   "--latency", str(latency)]
        if page_cap is not None:
            command += ["--page-cap", str(page_cap)]
        self._process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first_line = self._process.stdout.readline()
        if not first_line:
            raise SystemExit("bench: the simulator did not start (its error is above)")
        self.config = orjson.loads(first_line)["config"]

    def request_counts(self) -> tuple[int, int]:
        """Requests answered so far, and how many of them were not answered 200 (and so were retried)."""
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        report = orjson.loads(self._process.stdout.readline())
        return report["requests"], report["requests"] - report["statuses"].get("200", 0)

    def __enter__(self) -> "SimulatorProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self._process.stdin.close()  # the server's signal to stop
        self._process.wait(timeout=30)


class OutputTally:
    """Counts a client's RECORD and STATE lines from its stdout, a megabyte at a time.

    Counting whole blocks with bytes.count keeps this process's share of the machine small next to the
    client it measures; TRACE lines, rare, are kept to explain a failure.
    """

    RECORD = b'{"type":"RECORD"'
    STATE = b'{"type":"STATE"'
    TRACE = b'{"type":"TRACE"'

    def __init__(self) -> None:
        self.records = 0
        self.states = 0
        self.traces: list[bytes] = []
        self._partial_line = b""

    def consume(self, stream) -> None:
        while chunk := stream.read1(PIPE_CHUNK_BYTES):
            last_newline = chunk.rfind(b"\n")
            if last_newline < 0:
                self._partial_line += chunk
                continue
            self._count(self._partial_line + chunk[: last_newline + 1])
            self._partial_line = chunk[last_newline + 1:]
        if self._partial_line:
            self._count(self._partial_line + b"\n")

    def _count(self, lines: bytes) -> None:
        # `lines` starts at a line start, so a message starts either there or right after a newline.
        self.records += lines.count(b"\n" + self.RECORD) + lines.startswith(self.RECORD)
        self.states += lines.count(b"\n" + self.STATE) + lines.startswith(self.STATE)
        if self.TRACE in lines:
            self.traces += [line for line in lines.split(b"\n") if line.startswith(self.TRACE)]


def run_client(client: Client, round_number: int, simulator: SimulatorProcess, scratch: Path) -> Run:
    config_path = scratch / f"config-{len(list(scratch.glob('config-*')))}.json"
    config_path.write_bytes(orjson.dumps({**simulator.config, **client.config_overrides}))
    stderr_path = scratch / "stderr.txt"
    requests_before, retried_before = simulator.request_counts()
    tally = OutputTally()
    with open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(client.command(config_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
        _widen_pipe(process.stdout)
        tally.consume(process.stdout)
        # wait4 rather than Popen.wait: it also returns the resource usage of this one child.
        _, wait_status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    process.stdout.close()
    requests_after, retried_after = simulator.request_counts()
    problem = _failure_summary(tally.traces, stderr_path) if process.returncode else ""
    return Run(
        client=client.name, round=round_number, rows=tally.records, wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_kib=usage.ru_maxrss,
        requests=requests_after - requests_before, retried=retried_after - retried_before,
        states=tally.states, exit_code=process.returncode, problem=problem,
    )


def _widen_pipe(stream) -> None:
    # A 64 KiB pipe makes every client stop and wait for this reader about 2000 times a sync; 1 MiB (the
    # usual unprivileged limit) keeps the measure off the measured.
    try:
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_CHUNK_BYTES)
    except OSError:
        pass


def _failure_summary(traces: list[bytes], stderr_path: Path) -> str:
    for line in reversed(traces):
        trace = orjson.loads(line)["trace"]
        if trace.get("type") == "ERROR":
            return trace["error"]["message"]
    stderr_lines = stderr_path.read_text(errors="replace").strip().splitlines()
    return stderr_lines[-1] if stderr_lines else "no error message"


TABLE_HEADER = (
    f"  {'run':>3}  {'client':<28}{'rows':>9}{'wall s':>9}{'rows/s':>10}{'CPU s':>8}{'RSS MiB':>9}"
    f"{'requests':>10}{'states':>8}"
)


def _format_run(run: Run) -> str:
    line = (
        f"  {run.round:>3}  {run.client:<28}{run.rows:>9,}{run.wall_s:>9.2f}{run.rows_per_s / 1000:>9.1f}k"
        f"{run.cpu_s:>8.2f}{run.peak_rss_kib / KIB_PER_MIB:>9.1f}{run.requests:>10,}{run.states:>8,}"
    )
    if run.retried:
        line += f"  ({run.retried} answered non-200, retried)"
    if run.exit_code:
        line += f"  FAILED (exit {run.exit_code}): {run.problem}"
    return line


def run_in_turns(clients: list[Client], rounds: int, simulator: SimulatorProcess, scratch: Path) -> list[Run]:
    print(TABLE_HEADER)
    runs = []
    for round_number in range(1, rounds + 1):
        for client in clients:
            run = run_client(client, round_number, simulator, scratch)
            print(_format_run(run), flush=True)
            runs.append(run)
    row_counts = {run.rows for run in runs if not run.exit_code}
    if len(row_counts) > 1:
        print("  WARNING: the clients did not read the same rows: "
              + ", ".join(f"{run.client} (round {run.round}) {run.rows:,}" for run in runs))
    return runs


def median(runs: list[Run], client: Client, measure: Callable[[Run], float]) -> float:
    return statistics.median(measure(run) for run in runs if run.client == client.name)


def _load_average() -> str:
    # Other work on the machine slows every run; the load before and after says how quiet it was.
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def machine_summary(connector: str) -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    revision = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return [
        f"machine: {model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"{platform.system()} {platform.release()}, load average {_load_average()}",
        f"python {platform.python_version()}, airbyte-cdk {metadata.version('airbyte-cdk')}, "
        f"connector {connector}, tree {revision.stdout.strip() or 'unknown'}",
    ]


def _days_after(timestamp: str, days: int) -> str:
    return format_utc(utc(timestamp).add(days=days))


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data and one round of each client")
    parser.add_argument("--connector", help="the source-callvolume command to run (default: the one next to this python)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    connector = args.connector or shutil.which("source-callvolume", path=str(Path(sys.executable).parent)) \
        or shutil.which("source-callvolume")
    if connector is None:
        raise SystemExit("bench: no source-callvolume command: install the connector first (python3 dev.py sync)")

    print("\n".join(machine_summary(connector)), flush=True)
    with tempfile.TemporaryDirectory(prefix="callvolume-bench-") as scratch_name:
        scratch = Path(scratch_name)
        catalog_path = scratch / "catalog.json"
        catalog_path.write_bytes(orjson.dumps(CATALOG))

        def connector_command(config: Path) -> list[str]:
            return [connector, "read", "--config", str(config), "--catalog", str(catalog_path)]

        def raw_loop_command(config: Path) -> list[str]:
            return [sys.executable, "-m", "bench.raw_loop", str(config)]

        connector_default = Client("connector, default config", connector_command)
        raw_loop = Client("raw loop", raw_loop_command)

        with SimulatorProcess(sizes.throughput_queues, sizes.throughput_days) as simulator:
            print(f"\nthroughput: full refresh of {sizes.throughput_queues} queues x {sizes.throughput_days} days, "
                  "default page size (1000), no latency")
            throughput = run_in_turns([connector_default, raw_loop], sizes.throughput_rounds, simulator, scratch)

            first_days = {"end_date": _days_after(simulator.config["start_date"], sizes.memory_days)}
            connector_first_days = Client(f"connector, first {sizes.memory_days} days", connector_command, first_days)
            raw_first_days = Client(f"raw loop, first {sizes.memory_days} days", raw_loop_command, first_days)
            print(f"\nmemory: the same, first {sizes.memory_days} of the {sizes.throughput_days} days only")
            memory = run_in_turns([connector_first_days, raw_first_days], sizes.throughput_rounds, simulator, scratch)

        with SimulatorProcess(sizes.latency_queues, sizes.latency_days, page_cap=100, latency=0.1) as simulator:
            print(f"\nlatency: every answer 100 ms late, pages capped at 100 rows, {sizes.latency_queues} queues x "
                  f"{sizes.latency_days} days")
            one_worker = Client("connector, num_workers=1", connector_command, {"num_workers": 1})
            latency = run_in_turns([connector_default, one_worker], sizes.latency_rounds, simulator, scratch)

    def wall(run: Run) -> float:
        return run.wall_s

    def peak_rss(run: Run) -> float:
        return run.peak_rss_kib

    speedup = median(latency, one_worker, wall) / median(latency, connector_default, wall)
    wall_ratio = median(throughput, connector_default, wall) / median(throughput, raw_loop, wall)
    rss_ratio = median(throughput, connector_default, peak_rss) / median(memory, connector_first_days, peak_rss)
    print("\ngoals, from the medians" + (" (quick sizes: indicative only)" if args.quick else "") + ":")
    print(f"  1. parallel windows: num_workers=1 {median(latency, one_worker, wall):.2f} s / default "
          f"{median(latency, connector_default, wall):.2f} s = {speedup:.1f}x faster "
          f"(goal >= {GOAL_LATENCY_SPEEDUP:g}x): {_verdict(speedup >= GOAL_LATENCY_SPEEDUP)}")
    print(f"  2. lean per-row path: connector {median(throughput, connector_default, wall):.2f} s / raw loop "
          f"{median(throughput, raw_loop, wall):.2f} s = {wall_ratio:.1f}x the loop's wall "
          f"(goal <= {GOAL_WALL_RATIO:g}x): {_verdict(wall_ratio <= GOAL_WALL_RATIO)}")
    print(f"  3. flat memory: peak RSS {median(throughput, connector_default, peak_rss) / KIB_PER_MIB:.1f} MiB at "
          f"{throughput[0].rows:,} rows / {median(memory, connector_first_days, peak_rss) / KIB_PER_MIB:.1f} MiB at "
          f"{memory[0].rows:,} rows = {rss_ratio:.2f}x (goal <= {GOAL_RSS_RATIO:g}x): "
          f"{_verdict(rss_ratio <= GOAL_RSS_RATIO)}")
    print(f"load average at the end: {_load_average()}")
    return 1 if any(run.exit_code for run in throughput + memory + latency) else 0


if __name__ == "__main__":
    sys.exit(main())
