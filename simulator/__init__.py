"""Test double of the Kore.ai AgentAssist call-volume API; see `simulator.server` for how it is built."""

from simulator.budget import RATE_LIMIT_MESSAGE, RateLimit
from simulator.data import ORDERS, SEMANTICS, format_timestamp, parse_timestamp
from simulator.faults import FAIL_FOREVER_KINDS, REDIRECT_STATUSES, Faults
from simulator.neighbour import Neighbour
from simulator.server import Simulator

__all__ = [
    "FAIL_FOREVER_KINDS", "ORDERS", "RATE_LIMIT_MESSAGE", "REDIRECT_STATUSES", "SEMANTICS", "Faults", "Neighbour",
    "RateLimit", "Simulator", "format_timestamp", "parse_timestamp",
]
