"""The call-volume simulator in a process of its own, able to say how many requests it has answered.

    python -m bench.serve --queues 16 --days 120 [--page-cap 100] [--latency 0.1]

Prints one JSON line `{"url": ..., "config": ...}` once it listens, like `python -m simulator`, then answers
each line read on stdin with one JSON line `{"requests": N, "statuses": {"200": N, ...}}`: every request the
server has logged so far. The benchmark takes differences of these around each run, which counts what the
server really received, retries included, the same way for the connector and for the raw loop. (The
simulator's own CLI only serves; it cannot report its request log from another process.) The server stops
when stdin closes, so it never outlives the benchmark.

Data is pinned to fixed dates, so every run of the benchmark reads the same rows.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson

from simulator import Simulator

DATA_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--page-cap", type=int, help="largest page the server sends, whatever the limit asked")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server waits before each answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    horizon = DATA_START + timedelta(days=args.days)
    simulator = Simulator(
        queues=args.queues, data_start=DATA_START, horizon=horizon, page_cap=args.page_cap, latency=args.latency
    )
    simulator.start()
    config = simulator.config(end_date=horizon.strftime(TIMESTAMP_FORMAT))
    sys.stdout.write(orjson.dumps({"url": simulator.url, "config": config}).decode() + "\n")
    sys.stdout.flush()
    try:
        for _ in sys.stdin:
            statuses = Counter(str(entry["status"]) for entry in simulator.requests)
            report = {"requests": sum(statuses.values()), "statuses": dict(statuses)}
            sys.stdout.write(orjson.dumps(report).decode() + "\n")
            sys.stdout.flush()
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
