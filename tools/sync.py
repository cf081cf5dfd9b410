"""A real sync of the four WFM streams through PyAirbyte into DuckDB, then a per-queue summary, an agent-state view
and a chart of what is there.

Without `--config` it starts the bundled simulator (`python -m simulator`, in the connector's .venv) on
127.0.0.1 and syncs from it; with `--config FILE` it syncs from the Kore.ai account that file describes.
PyAirbyte runs the connector installed in .venv as an executable (`.venv/bin/source-callvolume`) and writes
to a DuckDB file: `.local/callvolume.duckdb` for the simulator, `.local/callvolume-<account_id>.duckdb` for a
Kore.ai account, so that one's state never steers the other's sync. The cache keeps the stream's state, keyed
by the source's name and not by its config, so the next run is incremental even against a new simulator on
another port; `--fresh` deletes the file and reads everything again. A chart beside the file (same name,
.png) shows offered and answered contacts per interval for the busiest queues over the last days synced, and the
share of time the busiest agents spent in each activity (from agent_activity: an activity lasts until the
agent's next event). Agents are shown by id only: their names are personal data.

Runs in .venv-pyairbyte; called by `python3 dev.py sync`.
"""

from __future__ import annotations

import os
import warnings

# Read by PyAirbyte when it is imported: no connector-registry look-up (the connector is local, and this machine
# may have no internet) and no telemetry.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# PyAirbyte imports the BigQuery client, which warns about Python 3.11's end of life on every run.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator, Optional  # noqa: E402

import airbyte  # noqa: E402
import matplotlib  # noqa: E402
from airbyte.caches import DuckDBCache  # noqa: E402
from airbyte.exceptions import PyAirbyteError  # noqa: E402

matplotlib.use("Agg")  # files only; there is no display
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
SIMULATOR_DUCKDB_FILE = LOCAL / "callvolume.duckdb"
CONNECTOR_VENV = ROOT / ".venv"
CONNECTOR_EXECUTABLE = CONNECTOR_VENV / "bin" / "source-callvolume"
SOURCE_NAME = "source-callvolume"
STREAM = "call_volume"
STREAMS = ["call_volume", "queues", "agents", "agent_activity"]
BUSIEST_AGENTS = 5
CURSOR_FIELD = "intervalEndTimeStamp"
DEFAULT_LOOKBACK_MINUTES = 180  # the spec's default for lookback_minutes
SIMULATOR_ARGUMENTS = ["--queues", "8", "--days", "14"]
SIMULATOR_STOP_TIMEOUT_SECONDS = 10
BUSIEST_QUEUES_CHARTED = 3
CHARTED_DAYS = 7


@contextmanager
def bundled_simulator() -> Iterator[dict[str, Any]]:
    """Runs `python -m simulator` for as long as PyAirbyte reads, and yields the connector config it prints."""
    process = subprocess.Popen(
        [str(CONNECTOR_VENV / "bin" / "python"), "-m", "simulator", "--port", "0", *SIMULATOR_ARGUMENTS],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()  # type: ignore[union-attr]
        if not first_line:
            raise SystemExit("The simulator did not start; its error is above.")
        started = json.loads(first_line)
        print(f"Syncing from the bundled simulator at {started['url']} (give --config FILE for Kore.ai).")
        yield started["config"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SIMULATOR_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def saved_cursor(cache: DuckDBCache) -> Optional[str]:
    """The stream's cursor as the cache last saved it, or None before the first sync."""
    state = cache.get_state_provider(SOURCE_NAME).get_stream_state(STREAM, not_found=None)
    if state is None:
        return None
    values = state.stream.stream_state.model_dump()
    if CURSOR_FIELD in values:
        return str(values[CURSOR_FIELD])
    # The concurrent cursor may save the date ranges it has read instead; their latest end is the cursor.
    ends = [str(part.get("most_recent_cursor_value") or part.get("end")) for part in values.get("slices", [])]
    return max(ends) if ends else json.dumps(values)


def sync(config: dict[str, Any], cache: DuckDBCache) -> int:
    """Reads the stream into the cache (incrementally when the cache holds a state) and returns the rows read."""
    source = airbyte.get_source(
        SOURCE_NAME, config=config, local_executable=CONNECTOR_EXECUTABLE, streams=STREAMS
    )
    result = source.read(cache=cache)
    return result.processed_records


def table_name(cache: DuckDBCache, stream: str = STREAM) -> str:
    return f"{cache.schema_name}.{cache.processor.get_sql_table_name(stream)}"


def table_exists(cache: DuckDBCache, stream: str) -> bool:
    table = cache.processor.get_sql_table_name(stream)
    return bool(
        cache.run_sql_query(
            f"SELECT 1 FROM information_schema.tables WHERE table_schema = '{cache.schema_name}' AND table_name = '{table}'"
        )
    )


def agent_time_shares(cache: DuckDBCache) -> list[dict[str, Any]]:
    """Hours per activity of the agents with the most events: an activity lasts until the agent's next event."""
    if not table_exists(cache, "agent_activity"):
        return []
    return cache.run_sql_query(
        f"""
        WITH spans AS (
            SELECT agentid, activity, CAST(eventtimeutc AS TIMESTAMP) AS started,
                   lead(CAST(eventtimeutc AS TIMESTAMP)) OVER (PARTITION BY agentid ORDER BY CAST(eventtimeutc AS TIMESTAMP)) AS ended
            FROM {table_name(cache, "agent_activity")}
            WHERE eventtimeutc IS NOT NULL
        ), busiest AS (
            SELECT agentid FROM spans GROUP BY agentid ORDER BY count(*) DESC, agentid LIMIT {BUSIEST_AGENTS}
        )
        SELECT agentid AS agent, activity, round(sum(epoch(ended) - epoch(started)) / 3600.0, 1) AS hours
        FROM spans WHERE ended IS NOT NULL AND agentid IN (SELECT agentid FROM busiest)
        GROUP BY 1, 2 ORDER BY 1, 2
        """
    )


def print_agent_shares(shares: list[dict[str, Any]]) -> None:
    activities = sorted({row["activity"] for row in shares})
    print(f"\n{'agent':<16}" + "".join(f"{activity:>10}" for activity in activities) + "   (share of time)")
    for agent in sorted({row["agent"] for row in shares}):
        hours = {row["activity"]: row["hours"] for row in shares if row["agent"] == agent}
        total = sum(hours.values()) or 1.0
        print(f"{agent[:15]:<16}" + "".join(f"{100 * hours.get(activity, 0) / total:>9.0f}%" for activity in activities))


def stream_counts(cache: DuckDBCache) -> dict[str, int]:
    return {
        stream: cache.run_sql_query(f"SELECT count(*) AS n FROM {table_name(cache, stream)}")[0]["n"]
        for stream in STREAMS
        if table_exists(cache, stream)
    }


def queue_summary(cache: DuckDBCache) -> list[dict[str, Any]]:
    """Rows, first and last interval, offered and answered per queue, busiest first; empty before any row."""
    if not table_exists(cache, STREAM):
        return []
    # PyAirbyte stores column names in lower case (intervalStartTimeStamp becomes intervalstarttimestamp).
    return cache.run_sql_query(
        f"""
        SELECT coalesce(queuename, queueid) AS queue,
               count(*) AS rows,
               min(intervalstarttimestamp) AS first_interval,
               max(intervalstarttimestamp) AS last_interval,
               sum(offeredcontacts) AS offered,
               sum(answeredcontacts) AS answered
        FROM {table_name(cache)}
        GROUP BY 1
        ORDER BY offered DESC, queue
        """
    )


def print_summary(summary: list[dict[str, Any]]) -> None:
    print(
        f"{'queue':<14}{'rows':>7}  {'first interval (UTC)':<22}{'last interval (UTC)':<22}"
        f"{'offered':>9}{'answered':>9}{'answered %':>11}"
    )
    for row in summary:
        share = 100 * row["answered"] / row["offered"] if row["offered"] else 0.0
        print(
            f"{row['queue']:<14}{row['rows']:>7}  {_minute(row['first_interval']):<22}"
            f"{_minute(row['last_interval']):<22}{row['offered']:>9}{row['answered']:>9}{share:>10.1f}%"
        )


def draw_chart(cache: DuckDBCache, summary: list[dict[str, Any]], shares: list[dict[str, Any]], chart_file: Path) -> None:
    """Offered and answered contacts per 15-minute interval, one panel per busiest queue, last days only; then
    the busiest agents' share of time per activity."""
    queues = [row["queue"] for row in summary[:BUSIEST_QUEUES_CHARTED]]
    rows = cache.run_sql_query(
        f"""
        WITH charted AS (
            SELECT coalesce(queuename, queueid) AS queue, CAST(intervalstarttimestamp AS TIMESTAMP) AS interval_start,
                   offeredcontacts AS offered, answeredcontacts AS answered
            FROM {table_name(cache)}
        )
        SELECT * FROM charted
        WHERE interval_start > (SELECT max(interval_start) FROM charted) - INTERVAL {CHARTED_DAYS} DAY
        ORDER BY interval_start
        """
    )
    panels = len(queues) + bool(shares)
    figure, axes = plt.subplots(panels, 1, figsize=(14, 3.2 * panels), squeeze=False)
    for panel, queue in zip(axes[:, 0], queues):
        queue_rows = [row for row in rows if row["queue"] == queue]
        starts = [row["interval_start"] for row in queue_rows]
        panel.plot(starts, [row["offered"] for row in queue_rows], label="offered", linewidth=0.9)
        panel.plot(starts, [row["answered"] for row in queue_rows], label="answered", linewidth=0.9)
        panel.set_title(queue, loc="left")
        panel.set_ylabel("contacts / 15 min")
        panel.legend(loc="upper right")
        panel.grid(alpha=0.3)
    if shares:
        panel = axes[-1, 0]
        agents = sorted({row["agent"] for row in shares})
        left = [0.0] * len(agents)
        for activity in sorted({row["activity"] for row in shares}):
            hours = [next((row["hours"] for row in shares if row["agent"] == agent and row["activity"] == activity), 0.0) for agent in agents]
            totals = [sum(row["hours"] for row in shares if row["agent"] == agent) or 1.0 for agent in agents]
            widths = [100 * hour / total for hour, total in zip(hours, totals)]
            panel.barh(agents, widths, left=left, label=activity)
            left = [start + width for start, width in zip(left, widths)]
        panel.set_xlabel("share of time (%)")
        panel.set_title(f"Agent states of the {len(agents)} agents with the most events", loc="left")
        panel.legend(loc="lower right", ncol=len(set(row["activity"] for row in shares)))
    figure.suptitle(f"Call volume of the {len(queues)} busiest queues, last {CHARTED_DAYS} days synced (UTC); agent states")
    figure.tight_layout()
    figure.savefig(chart_file, dpi=100)
    plt.close(figure)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a connector config for a real Kore.ai account")
    parser.add_argument("--fresh", action="store_true", help="delete the DuckDB file and read everything again")
    arguments = parser.parse_args(argv)
    if not CONNECTOR_EXECUTABLE.exists():
        raise SystemExit(f"{CONNECTOR_EXECUTABLE} is missing: run `python3 dev.py sync`, which installs it.")
    config = json.loads(arguments.config.read_text()) if arguments.config else None
    duckdb_file = SIMULATOR_DUCKDB_FILE if config is None else account_duckdb_file(config)
    LOCAL.mkdir(exist_ok=True)
    if arguments.fresh:
        for leftover in (duckdb_file, duckdb_file.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
    cache = DuckDBCache(db_path=duckdb_file)
    cursor_before = saved_cursor(cache)
    if cursor_before is None:
        print(
            f"First sync into {duckdb_file.relative_to(ROOT)}: no saved state, reading from `start_date` "
            "(or the account's first interval)."
        )
    else:
        lookback = (config or {}).get("lookback_minutes", DEFAULT_LOOKBACK_MINUTES)
        print(
            f"Incremental sync into {duckdb_file.relative_to(ROOT)}: from the saved cursor {cursor_before} "
            f"less the {lookback}-minute lookback."
        )

    try:
        if config is not None:
            rows_read = sync(config, cache)
        else:
            with bundled_simulator() as simulator_config:
                rows_read = sync(simulator_config, cache)
    except PyAirbyteError as error:
        print(f"The sync failed: {error}", file=sys.stderr)
        return 1

    summary = queue_summary(cache)
    counts = ", ".join(f"{stream} {count}" for stream, count in stream_counts(cache).items())
    print(
        f"Read {rows_read} rows; the tables hold {counts} (merged on their keys); "
        f"call_volume cursor {cursor_before or '(none)'} -> {saved_cursor(cache)}."
    )
    print_summary(summary)
    shares = agent_time_shares(cache)
    if shares:
        print_agent_shares(shares)
    if summary:
        chart_file = duckdb_file.with_suffix(".png")
        draw_chart(cache, summary, shares, chart_file)
        print(f"Chart: {chart_file.relative_to(ROOT)}")
    return 0


def account_duckdb_file(config: dict[str, Any]) -> Path:
    account = re.sub(r"[^A-Za-z0-9_-]", "_", str(config.get("account_id", "")).strip()) or "account"
    return LOCAL / f"callvolume-{account}.duckdb"


def _minute(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value)[:16]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
