"""Run the WFM API simulator (call volume, queues, agents, agent activity) as a process: ``python -m simulator``.

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

from simulator.faults import FAIL_FOREVER_KINDS, REDIRECT_STATUSES
from simulator.server import ORDERS, SEMANTICS, Faults, Simulator, parse_timestamp
from simulator.wfm import ACTIVITY_ORDERS, QUEUE_DESCRIPTION_KEYS


def _utc_datetime(text: str) -> datetime:
    seconds = parse_timestamp(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 UTC timestamp: {text!r}")
    return datetime.fromtimestamp(seconds, timezone.utc)


def retry_after_argument(text: str) -> int | str:
    """`--rate-limit-retry-after`: a whole number of seconds, or `exact`."""
    if text == "exact":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'an integer or "exact", not {text!r}') from None


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
    hostile = parser.add_argument_group("hostile modes (all off by default)")
    hostile.add_argument("--ignore-skip", action="store_true", default=None,
                         help="serve every page from offset 0, hasMore always true")
    hostile.add_argument("--endless-has-more", action="store_true", default=None,
                         help="hasMore never false; pages past the real rows are fabricated")
    hostile.add_argument("--omit-has-more", action="store_true", default=None, help="pages carry no hasMore")
    hostile.add_argument("--omit-total-count", action="store_true", default=None, help="pages carry no totalCount")
    hostile.add_argument("--future-row", nargs="?", const=True, type=_utc_datetime, metavar="TIMESTAMP",
                         help="the first page carries one extra row at TIMESTAMP (default 2070-01-01)")
    hostile.add_argument("--redirect", nargs=2, metavar=("STATUS", "LOCATION"),
                         help=f"answer every call-volume request STATUS ({', '.join(map(str, REDIRECT_STATUSES))}) "
                              "with Location: LOCATION")
    hostile.add_argument("--echo-auth-400", action="store_true", default=None,
                         help="answer 400 echoing the auth token in the message and an X-Echo-Auth header")
    hostile.add_argument("--contradictory-probe", nargs="?", const=True, choices=["once"],
                         help="requests without fromTimeStamp get [] with hasMore true (only the first: once)")
    hostile.add_argument("--drip-seconds", type=float, help="write answers one byte at a time, this far apart")
    hostile.add_argument("--drip-first-n", type=int, help="drip only the first N call-volume answers")
    hostile.add_argument("--fail-forever-after", type=int, metavar="N",
                         help="after N successful answers, fail every request for good")
    hostile.add_argument("--fail-forever-kind", choices=FAIL_FOREVER_KINDS)
    wfm = parser.add_argument_group("queues, agents and agent activity")
    wfm.add_argument("--agents", type=int, metavar="N", help="agents in the account (default: 3 per queue)")
    wfm.add_argument("--agents-page-cap", type=int, metavar="N",
                     help="an agents page holds at most N agents, whatever limit asks")
    wfm.add_argument("--ignore-offset", action="store_true", default=None,
                     help="every agents page is the offset-0 page")
    wfm.add_argument("--activity-answer-cap", type=int, metavar="N",
                     help="an agent-activity answer silently holds only the earliest N events of its window")
    wfm.add_argument("--activity-order", choices=ACTIVITY_ORDERS)
    wfm.add_argument("--queue-description-key", choices=QUEUE_DESCRIPTION_KEYS,
                     help="the queues' name key; mixed alternates description and Description")
    limit = parser.add_argument_group("rate limit (off by default; Kore.ai's cloud: 60)")
    limit.add_argument("--rate-limit-per-minute", type=int, metavar="N",
                       help="at most N requests per account per rolling 60 s, then 429")
    limit.add_argument("--rate-limit-retry-after", type=retry_after_argument, metavar="SECONDS|exact",
                       help="send Retry-After on 429s: a fixed value, or exact seconds until a slot frees")
    limit.add_argument("--no-count-refused", dest="count_refused", action="store_false", default=None,
                       help="429s do not count toward the window (by default they do)")
    limit.add_argument("--neighbour-every", type=float, metavar="SECONDS",
                       help="run a second client of the account (a WFM tool) polling this often")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    faults = Faults(
        rate_429=args.pop("rate_429"), rate_5xx=args.pop("rate_5xx"), rate_truncated=args.pop("rate_truncated"),
        rate_not_json=args.pop("rate_not_json"), rate_reset=args.pop("rate_reset"),
        rate_hang=args.pop("rate_hang"), retry_after=args.pop("retry_after"),
        hang_seconds=args.pop("hang_seconds"), first_n_only=args.pop("faults_first_n"),
    )
    neighbour_every = args.pop("neighbour_every")
    if args["redirect"] is not None:
        status, location = args["redirect"]
        if not status.isdigit():
            _parser().error(f"--redirect: STATUS must be one of {REDIRECT_STATUSES}, not {status!r}")
        args["redirect"] = (int(status), location)
    # Options left unset fall back to the constructor's defaults, which stay the single source of truth.
    options = {name: value for name, value in args.items() if value is not None}
    try:
        simulator = Simulator(faults=faults, **options)
    except ValueError as problem:
        _parser().error(str(problem))
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    url = simulator.start()
    neighbour = simulator.neighbour(every=neighbour_every).start() if neighbour_every else None
    sys.stdout.write(orjson.dumps({"url": url, "config": simulator.config()}).decode() + "\n")
    sys.stdout.flush()
    stop_requested.wait()
    if neighbour is not None:
        neighbour.stop()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
