"""The call-volume simulator in a process of its own, able to say how many requests it has answered.

    python -m bench.serve --queues 16 --days 120 [--page-cap 100] [--latency 0.1]
                          [--rate-limit-per-minute 60 [--rate-limit-retry-after SECONDS|exact]]
                          [--neighbour-every 10]

Prints one JSON line `{"url": ..., "config": ...}` once it listens, like `python -m simulator`, then answers
each line read on stdin with one JSON line:

- an empty line: `{"requests": N, "statuses": {"200": N, ...}, "rate_limited": N, "neighbour": ...}`, counted
  from the server's request log so far. `requests`, `statuses` and `rate_limited` (429s the rate limit sent)
  cover every request but the neighbour's (told apart by its User-Agent): the client under test, retries
  included. `neighbour` is null, or `{"sent": N, "rate_limited": N, "statuses": {"200": N, ...}}` as the
  neighbour itself saw its answers (status "0": no answer). The benchmark takes differences of these around
  each run, which counts what the server really received, the same way for the connector and for the raw
  loop. (The simulator's own CLI only serves; it cannot report its request log from another process.)
- `ids PATH`: writes the `_id` of every row the account publishes, sorted, one a line, to PATH, and answers
  `{"ids": N}`; the benchmark compares them with the ids the client wrote.

`--rate-limit-*` turn on Kore.ai's per-account limit (`simulator.budget`); `--neighbour-every` starts the
contact centre's own WFM tool (`simulator.neighbour`) polling the same account from this process, from the
moment the server listens until it stops. The server stops when stdin closes, so it never outlives the
benchmark.

Data is pinned to fixed dates, so every run of the benchmark reads the same rows.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pendulum

from simulator import Simulator
from simulator.__main__ import retry_after_argument
from simulator.neighbour import USER_AGENT as NEIGHBOUR_USER_AGENT
from source_callvolume.components import format_utc

DATA_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
IDS_COMMAND = "ids "


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--page-cap", type=int, help="largest page the server sends, whatever the limit asked")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server waits before each answer")
    parser.add_argument("--rate-limit-per-minute", type=int, metavar="N",
                        help="at most N requests per account per rolling 60 s, then 429 (default: no limit)")
    parser.add_argument("--rate-limit-retry-after", type=retry_after_argument, metavar="SECONDS|exact",
                        help="send Retry-After on the limit's 429s (default: none, as Kore.ai documents)")
    parser.add_argument("--neighbour-every", type=float, metavar="SECONDS",
                        help="a second client of the account (the WFM tool) polls this often while the server runs")
    return parser


def _counts(simulator: Simulator, neighbour) -> dict:
    statuses: Counter[str] = Counter()
    rate_limited = 0
    for entry in simulator.requests:
        if entry["user_agent"] == NEIGHBOUR_USER_AGENT:
            continue
        statuses[str(entry["status"])] += 1
        rate_limited += entry["rate_limited"]
    report = {"requests": sum(statuses.values()), "statuses": dict(statuses), "rate_limited": rate_limited,
              "neighbour": None}
    if neighbour is not None:
        report["neighbour"] = {
            "sent": neighbour.sent, "rate_limited": neighbour.rate_limited,
            "statuses": {str(status): count for status, count in dict(neighbour.statuses).items()},
        }
    return report


def _write_ids(simulator: Simulator, path: str) -> dict:
    # A day at a time, so that only one day's rows are ever decoded at once (1M rows at once take ~2 GiB).
    ids: set[str] = set()
    day = simulator.data_start
    while day < simulator.horizon:
        ids.update(row["_id"] for row in simulator.records(day, min(day + timedelta(days=1), simulator.horizon)))
        day += timedelta(days=1)
    with open(path, "w") as file:
        file.write("".join(f"{record_id}\n" for record_id in sorted(ids)))
    return {"ids": len(ids)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    horizon = DATA_START + timedelta(days=args.days)
    simulator = Simulator(
        queues=args.queues, data_start=DATA_START, horizon=horizon, page_cap=args.page_cap, latency=args.latency,
        rate_limit_per_minute=args.rate_limit_per_minute, rate_limit_retry_after=args.rate_limit_retry_after,
    )
    simulator.start()
    neighbour = simulator.neighbour(every=args.neighbour_every).start() if args.neighbour_every else None
    config = simulator.config(end_date=format_utc(pendulum.instance(horizon)))
    sys.stdout.write(orjson.dumps({"url": simulator.url, "config": config}).decode() + "\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            command = line.rstrip("\n")
            if command.startswith(IDS_COMMAND):
                report = _write_ids(simulator, command[len(IDS_COMMAND):])
            else:
                report = _counts(simulator, neighbour)
            sys.stdout.write(orjson.dumps(report).decode() + "\n")
            sys.stdout.flush()
    finally:
        if neighbour is not None:
            neighbour.stop()
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
