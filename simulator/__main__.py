"""Run the call-volume simulator as a process: ``python -m simulator [options]``.

Prints one JSON line ``{"url": ..., "config": ...}`` to stdout once it listens, so a benchmark or an
end-to-end test can read where to connect, then serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime, timezone

import orjson

from simulator.server import ORDERS, SEMANTICS, Faults, Simulator, parse_timestamp


def _utc_datetime(text: str) -> datetime:
    seconds = parse_timestamp(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 UTC timestamp: {text!r}")
    return datetime.fromtimestamp(seconds, timezone.utc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-id")
    parser.add_argument("--org-id")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--queues", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--data-start", type=_utc_datetime, help="e.g. 2024-01-01T00:00:00Z")
    parser.add_argument("--horizon", type=_utc_datetime, help="latest published interval end")
    parser.add_argument("--semantics", choices=SEMANTICS)
    parser.add_argument("--page-cap", type=int)
    parser.add_argument("--default-limit", type=int)
    parser.add_argument("--enforce-jti", action="store_true", default=None)
    parser.add_argument("--scope-denied", dest="scope_granted", action="store_false", default=None)
    parser.add_argument("--latency", type=float)
    parser.add_argument("--order", choices=ORDERS)
    parser.add_argument("--seed", type=int)
    faults = parser.add_argument_group("faults")
    for rate in ("429", "5xx", "truncated", "not-json", "reset", "hang"):
        faults.add_argument(f"--rate-{rate}", type=float, default=0.0)
    faults.add_argument("--retry-after", type=int, default=1)
    faults.add_argument("--hang-seconds", type=float, default=30)
    faults.add_argument("--faults-first-n", type=int, help="only the first N valid requests may fault")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    faults = Faults(
        rate_429=args.pop("rate_429"), rate_5xx=args.pop("rate_5xx"), rate_truncated=args.pop("rate_truncated"),
        rate_not_json=args.pop("rate_not_json"), rate_reset=args.pop("rate_reset"),
        rate_hang=args.pop("rate_hang"), retry_after=args.pop("retry_after"),
        hang_seconds=args.pop("hang_seconds"), first_n_only=args.pop("faults_first_n"),
    )
    # Options left unset fall back to the constructor's defaults, which stay the single source of truth.
    options = {name: value for name, value in args.items() if value is not None}
    simulator = Simulator(faults=faults, **options)
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    url = simulator.start()
    sys.stdout.write(orjson.dumps({"url": url, "config": simulator.config()}).decode() + "\n")
    sys.stdout.flush()
    stop_requested.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
