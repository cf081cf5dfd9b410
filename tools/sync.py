"""A real sync with the installed `source-callvolume` command, and a per-queue summary of what it read.

Without `--config` it starts the bundled simulator on 127.0.0.1 and syncs from it; with `--config FILE` it
syncs from the Kore.ai account that file describes. State is kept in `.local/state.json`, so a second run is
incremental. Called by `python3 dev.py sync`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

from simulator import Simulator

STREAM = "call_volume"
LOCAL = Path(".local")
STATE_FILE = LOCAL / "state.json"
CATALOG = {
    "streams": [
        {
            "stream": {"name": STREAM, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "incremental",
            "destination_sync_mode": "append_dedup",
            "cursor_field": ["intervalEndTimeStamp"],
            "primary_key": [["_id"]],
        }
    ]
}


def _read(config_path: Path, scratch: Path) -> tuple[list[dict], list[dict], list[str]]:
    catalog_path = scratch / "catalog.json"
    catalog_path.write_text(json.dumps(CATALOG))
    command = ["source-callvolume", "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if STATE_FILE.exists():
        command += ["--state", str(STATE_FILE)]
    records, states, errors = [], [], []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:  # type: ignore[union-attr]
            message = json.loads(line)
            if message["type"] == "RECORD":
                records.append(message["record"]["data"])
            elif message["type"] == "STATE":
                states.append(message["state"])
                STATE_FILE.write_text(json.dumps([message["state"]]))
            elif message["type"] == "TRACE" and message["trace"].get("type") == "ERROR":
                errors.append(message["trace"]["error"]["message"])
    return records, states, errors


def _summary(records: list[dict]) -> str:
    by_queue: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_queue[record.get("queueName") or record.get("queueId") or "?"].append(record)
    lines = [f"{'queue':<16}{'rows':>7}  {'first interval':<25}{'last interval':<25}{'offered':>9}{'answered':>9}"]
    for queue, rows in sorted(by_queue.items(), key=lambda item: -sum(r.get("offeredContacts") or 0 for r in item[1])):
        starts = sorted(row["intervalStartTimeStamp"] for row in rows)
        offered = sum(row.get("offeredContacts") or 0 for row in rows)
        answered = sum(row.get("answeredContacts") or 0 for row in rows)
        lines.append(f"{queue:<16}{len(rows):>7}  {starts[0]:<25}{starts[-1]:<25}{offered:>9}{answered:>9}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, help="a connector config for a real Kore.ai account")
    parser.add_argument("--fresh", action="store_true", help="forget the saved state and read everything again")
    arguments = parser.parse_args(argv)
    LOCAL.mkdir(exist_ok=True)
    if arguments.fresh:
        STATE_FILE.unlink(missing_ok=True)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        config_path = arguments.config
        if config_path is None:
            simulator = stack.enter_context(Simulator(queues=8, days=14))
            config_path = scratch / "config.json"
            config_path.write_text(json.dumps(simulator.config()))
            print(f"Syncing from the bundled simulator at {simulator.url} (give --config FILE for Kore.ai).")
        mode = "incremental, from the saved state" if STATE_FILE.exists() else "first sync"
        records, states, errors = _read(config_path, scratch)
    print(f"Read {len(records)} rows ({mode}); {len(states)} state checkpoints; state now in {STATE_FILE}.")
    if records:
        print(_summary(records))
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
