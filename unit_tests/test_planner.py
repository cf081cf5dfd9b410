"""Pins what the package decides before a read when the config leaves it open, in-process against the loopback
simulator (latency and concurrency need a real server):

- without `num_workers`, the workers hide the API's latency behind the connector's own work and no more: one for
  an API that answers at once, several for a slow one, two at most under a small budget;
- the windows the package sizes come in full rounds of the workers;
- a `num_workers` the user gives is kept.
"""

import re
from typing import Any, List, Mapping, Optional

import pytest
import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from simulator import Simulator
from source_callvolume.source import SourceCallvolume
from testkit import STREAM

PAGE_CAP = 100
LATENCY_SECONDS = 0.05
UNPACED = 100000


def _read(config: Mapping[str, Any]) -> EntrypointOutput:
    catalog = CatalogBuilder().with_stream(STREAM, SyncMode.full_refresh).build()
    return read(SourceCallvolume(catalog, config, None), config, catalog, None)


def _workers_chosen(output: EntrypointOutput) -> Optional[int]:
    """The workers the package chose, as its LOG line says; None without one."""
    lines = [message.log.message for message in output.logs if message.log.message.startswith("No num_workers")]
    assert len(lines) <= 1
    found = re.search(r": (\d+) workers?\.$", lines[0]) if lines else None
    return int(found.group(1)) if found else None


def _windows(requests: List[Mapping[str, Any]]) -> List[str]:
    """The windows the read asked for: the `fromTimeStamp` of every first page (the planner's probes have none or
    come before the read's first window)."""
    firsts = [request["body"] for request in requests if request["body"] and request["body"].get("skip") == 0]
    starts = sorted({body["fromTimeStamp"] for body in firsts if "fromTimeStamp" in body})
    return starts


def _most_at_once(requests: List[Mapping[str, Any]], seconds: float) -> int:
    times = sorted(request["received_at"] for request in requests)
    return max(sum(1 for later in times[index:] if later - moment < seconds) for index, moment in enumerate(times))


def test_an_api_that_answers_at_once_is_read_by_one_worker() -> None:
    # Regression: eight workers on two cores took turns at the interpreter lock, and a full refresh took 23 s
    # where one worker takes 14.
    with Simulator(queues=4, days=20) as sim:
        output = _read(sim.config(requests_per_minute=UNPACED))
        expected = len(sim.records())

    assert len(output.records) == expected and not output.errors
    assert _workers_chosen(output) == 1


def test_a_slow_api_is_read_by_as_many_workers_as_hide_its_latency() -> None:
    with Simulator(queues=4, days=20, page_cap=PAGE_CAP, latency=LATENCY_SECONDS) as sim:
        output = _read(sim.config(requests_per_minute=UNPACED))
        expected = len(sim.records())
        requests = sim.requests

    assert len(output.records) == expected and not output.errors
    # 50 ms (and whatever the loopback adds) against about 7.5 ms of the connector's own work a page of 100 rows.
    workers = _workers_chosen(output)
    assert workers is not None and 7 <= workers <= 9
    assert _most_at_once(requests, LATENCY_SECONDS) >= 5


def test_a_small_budget_gets_no_more_workers_than_it_keeps_busy() -> None:
    with Simulator(queues=4, days=20, page_cap=PAGE_CAP, latency=LATENCY_SECONDS) as sim:
        output = _read(sim.config(requests_per_minute=600))

    # 10 requests a second of about 57.5 ms each keep one busy; one more for the variance.
    assert _workers_chosen(output) == 2


def test_planned_windows_come_in_full_rounds_of_the_workers() -> None:
    # 40 days of 4 queues in pages of 100 make 14 windows of about ten pages: with 7 to 9 workers, fewer and
    # longer windows rather than a second round with most workers idle.
    with Simulator(queues=4, days=40, page_cap=PAGE_CAP, latency=LATENCY_SECONDS) as sim:
        output = _read(sim.config(requests_per_minute=UNPACED))
        windows = _windows(sim.requests)

    workers = _workers_chosen(output)
    assert workers is not None and len(windows) % workers == 0


def test_a_num_workers_the_user_gives_is_kept_and_windows_fill_its_rounds() -> None:
    with Simulator(queues=4, days=20, page_cap=PAGE_CAP, latency=LATENCY_SECONDS) as sim:
        output = _read(sim.config(requests_per_minute=UNPACED, num_workers=3))
        expected = len(sim.records())
        windows = _windows(sim.requests)

    assert len(output.records) == expected and not output.errors
    assert _workers_chosen(output) is None
    assert len(windows) % 3 == 0


class _ClockOfLatency:
    """requests' clock, moving `latency` seconds between the two readings that time each request (its `elapsed`),
    so that the planner measures exactly that latency."""

    def __init__(self, latency: float) -> None:
        self._latency, self._now, self._readings = latency, 0.0, 0

    def __call__(self) -> float:
        self._readings += 1
        if self._readings % 2 == 0:
            self._now += self._latency
        return self._now


@pytest.mark.parametrize(
    "latency, per_minute, workers",
    [
        # 10 requests a second of 193.5 + 7.5 ms: 2.01 kept busy, so three, plus one for the variance.
        (0.1935, 600, 4),
        # 1 s against 7.5 ms of work a page would want 134; past 16 they only queue for the interpreter lock.
        (1.0, UNPACED, 16),
    ],
    ids=["the-budget-decides", "at-most-sixteen"],
)
def test_the_workers_chosen_are_said_with_the_latency_the_work_a_page_and_the_budget(
    monkeypatch: pytest.MonkeyPatch, latency: float, per_minute: int, workers: int
) -> None:
    monkeypatch.setattr(requests.sessions, "preferred_clock", _ClockOfLatency(latency))
    with Simulator(queues=1, days=3, page_cap=PAGE_CAP) as sim:
        output = _read(sim.config(requests_per_minute=per_minute))

    lines = [message.log.message for message in output.logs if message.log.message.startswith("No num_workers")]
    assert lines == [
        f"No num_workers: Kore.ai answers in {latency * 1000:.0f} ms and a page of 100 rows costs the connector about "
        f"8 ms, at {per_minute} requests a minute: {workers} workers."
    ]
