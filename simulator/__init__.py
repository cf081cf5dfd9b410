"""Test double of Kore.ai's AgentAssist WFM APIs (call volume, queues, agents, agent activity); see
`simulator.server` for how it is built."""

from simulator.budget import RATE_LIMIT_MESSAGE, RateLimit
from simulator.data import ORDERS, SEMANTICS, format_timestamp, parse_timestamp
from simulator.faults import FAIL_FOREVER_KINDS, REDIRECT_STATUSES, Faults
from simulator.neighbour import Neighbour
from simulator.server import Simulator
from simulator.wfm import ACTIVITY_ORDERS, QUEUE_DESCRIPTION_KEYS, format_event_time, parse_event_time

__all__ = [
    "ACTIVITY_ORDERS", "FAIL_FOREVER_KINDS", "ORDERS", "QUEUE_DESCRIPTION_KEYS", "RATE_LIMIT_MESSAGE",
    "REDIRECT_STATUSES", "SEMANTICS", "Faults", "Neighbour", "RateLimit", "Simulator", "format_event_time",
    "format_timestamp", "parse_event_time", "parse_timestamp",
]
