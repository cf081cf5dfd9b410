"""Pins the request budget through the installed command (issue 10): at most `requests_per_minute` requests in any
minute, with a progress line at least once a minute; a 429 without Retry-After waits for the window and loses
nothing; and windows sized from the account's density spend close to one request per full page.

The pacing tests run in real time (a minute and more), against the simulator's per-account rate limit.
"""

import math
from typing import List

from integration_tests.conftest import Connector, by_id
from simulator import Simulator

PAGE_CAP = 50


def _most_in_any_minute(times: List[float]) -> int:
    times = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_requests_never_exceed_the_budget_in_any_minute(connector: Connector) -> None:
    with Simulator(queues=4, days=4, page_cap=PAGE_CAP) as sim:
        run = connector.read(sim.config(requests_per_minute=30), sync_mode="full_refresh")
        expected = sim.records()
        received = [request["received_at"] for request in sim.requests]

    assert run.returncode == 0 and by_id(run.records) == by_id(expected)
    assert len(received) > 30, "the read must need more than a minute's budget to test the pacing"
    assert _most_in_any_minute(received) <= 30
    assert received[-1] - received[0] >= 60
    # A budget-bound read says how far it got, at least once a minute.
    progress = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["message"].startswith("Progress of callvolume")]
    assert progress and "rows read with" in progress[0] and "min left" in progress[0]


def test_a_429_without_retry_after_waits_for_the_window_and_loses_nothing(connector: Connector) -> None:
    # The account's limit (20) is below what the connector was told (30): Kore.ai refuses the surplus without
    # Retry-After, and the connector waits for the window to free up instead of backing off for minutes.
    with Simulator(queues=4, days=4, page_cap=PAGE_CAP, rate_limit_per_minute=20) as sim:
        run = connector.read(sim.config(requests_per_minute=30), sync_mode="full_refresh")
        expected = sim.records()
        log = sim.requests

    refused = [request for request in log if request["rate_limited"]]
    assert run.returncode == 0 and not run.errors
    assert by_id(run.records) == by_id(expected)
    assert refused and len(refused) <= len(log) // 4
    served = [request["received_at"] for request in log if not request["rate_limited"]]
    # Waiting for the window, not for an exponential back-off: the sync ends within a minute of the budget's pace.
    assert served[-1] - served[0] <= (len(served) / 20 + 1) * 60


def test_windows_sized_from_the_density_spend_about_one_request_per_full_page(connector: Connector) -> None:
    # Regression: a 24-hour window of a small account cost a request for a page a fraction full.
    with Simulator(queues=2, days=20, page_cap=PAGE_CAP) as sim:
        run = connector.read(sim.config(requests_per_minute=100000), sync_mode="full_refresh")
        rows = len(sim.records())
        spent = len(sim.requests)

    assert run.returncode == 0 and len(run.records) == rows
    assert spent <= 1.1 * math.ceil(rows / PAGE_CAP) + 2, (spent, rows)
