"""Pins the call-volume simulator's semantics that connector tests rely on.

Each of the four time-filter rules at aligned window edges (where they must agree, which is what
makes aligned slices safe for a connector) and at unaligned ones (where they must differ), page cap with hasMore and
totalCount, `records()` agreeing with what paging returns, the auth/scope/account/body error codes,
a forced 429 carrying Retry-After, and rows inserted or removed mid-paging shifting later offsets.

Then the hostile modes, each as a client sees it on the wire (plain `requests`, or `http.client` and raw
sockets where `requests` would hide what happens): skip ignored, endless hasMore, hasMore or totalCount
left out, a far-future row, redirects (with two simulators: what the target received), a 400 echoing the
token, the contradictory first-day probe, dripped answers, failing for good; Kore.ai's per-account rate
limit (on a fake clock, so rolling windows take no time); the request log's fields; and the CLI.
"""

import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest
import requests

from simulator import RATE_LIMIT_MESSAGE, Simulator
from simulator.neighbour import USER_AGENT as NEIGHBOUR_USER_AGENT

DATA_START = datetime(2023, 6, 1, tzinfo=timezone.utc)
HORIZON = datetime(2023, 6, 3, tzinfo=timezone.utc)
QUEUES = 3
CALLVOLUME = "/agentassist/api/public/analytics/account/{account}/callvolume"
DAY = "2023-06-01T"
UNBOUNDED_TO = "2023-06-03T00:00:00Z"

# The default client secret is shorter than PyJWT's recommended 32 bytes; that is the point of no test here.


def make_simulator(**options) -> Simulator:
    return Simulator(queues=QUEUES, data_start=DATA_START, horizon=HORIZON, **options)


def post(sim: Simulator, body: dict, token: str | None = None, account: str | None = None) -> requests.Response:
    path = CALLVOLUME.format(account=account or sim.account_id)
    return requests.post(sim.url + path, json=body, headers={"auth": token or sim.token()}, timeout=5)


def window(sim: Simulator, to_ts: str, from_ts: str | None = None, **extra) -> dict:
    body = {"orgId": sim.org_id, "toTimeStamp": to_ts, **extra}
    if from_ts is not None:
        body["fromTimeStamp"] = from_ts
    return body


def page_through(sim: Simulator, body: dict, limit: int) -> list[dict]:
    rows, skip = [], 0
    while True:
        page = post(sim, {**body, "skip": skip, "limit": limit}).json()
        rows += page["CallVolumeUpdate"]
        skip += len(page["CallVolumeUpdate"])
        if not page["hasMore"]:
            return rows


def interval_starts(rows: list[dict]) -> list[str]:
    return sorted({row["intervalStartTimeStamp"][11:16] for row in rows})


@pytest.fixture(scope="module")
def sim():
    with make_simulator() as simulator:
        yield simulator


@pytest.mark.parametrize(
    ("semantics", "from_ts", "to_ts", "expected_starts"),
    [
        ("inside", "10:00:00Z", "11:00:00Z", ["10:00", "10:15", "10:30", "10:45"]),
        ("start", "10:00:00Z", "11:00:00Z", ["10:00", "10:15", "10:30", "10:45"]),
        ("end", "10:00:00Z", "11:00:00Z", ["10:00", "10:15", "10:30", "10:45"]),
        ("overlap", "10:00:00Z", "11:00:00Z", ["10:00", "10:15", "10:30", "10:45"]),
        ("inside", "10:05:00.000Z", "11:05:00.000Z", ["10:15", "10:30", "10:45"]),
        ("start", "10:05:00.000Z", "11:05:00.000Z", ["10:15", "10:30", "10:45", "11:00"]),
        ("end", "10:05:00.000Z", "11:05:00.000Z", ["10:00", "10:15", "10:30", "10:45"]),
        ("overlap", "10:05:00.000Z", "11:05:00.000Z", ["10:00", "10:15", "10:30", "10:45", "11:00"]),
    ],
)
def test_each_semantics_selects_the_intervals_its_rule_names(semantics, from_ts, to_ts, expected_starts):
    with make_simulator(semantics=semantics) as sim:
        page = post(sim, window(sim, DAY + to_ts, DAY + from_ts, limit=100)).json()
    assert interval_starts(page["CallVolumeUpdate"]) == expected_starts
    assert page["totalCount"] == len(page["CallVolumeUpdate"])
    assert page["hasMore"] is False


def test_page_cap_shortens_pages_while_has_more_and_total_count_stay_true():
    with make_simulator(page_cap=5) as sim:
        page = post(sim, window(sim, DAY + "12:00:00Z", DAY + "10:00:00Z", limit=50)).json()
        assert len(page["CallVolumeUpdate"]) == 5
        assert page["hasMore"] is True
        assert page["totalCount"] == len(sim.records(DAY + "10:00:00Z", DAY + "12:00:00Z")) > 5


def test_paging_through_a_window_returns_exactly_records(sim):
    body = window(sim, UNBOUNDED_TO)
    paged = page_through(sim, body, limit=37)
    assert paged == sim.records(to_ts=UNBOUNDED_TO)
    assert len({row["_id"] for row in paged}) == len(paged) > 500


def test_token_signed_with_another_secret_is_refused(sim):
    forged = jwt.encode({"appId": sim.client_id}, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    response = post(sim, window(sim, UNBOUNDED_TO), token=forged)
    assert response.status_code == 401
    assert response.json() == {"errors": [{"msg": "Invalid or expired token"}]}


def test_numeric_app_id_does_not_match_even_with_the_same_digits():
    with make_simulator(client_id="12345") as sim:
        assert post(sim, window(sim, UNBOUNDED_TO), token=sim.token(appId=12345)).status_code == 401
        assert post(sim, window(sim, UNBOUNDED_TO), token=sim.token(appId="12345")).status_code == 200


def test_enforced_jti_refuses_a_reused_or_missing_jti():
    with make_simulator(enforce_jti=True) as sim:
        token = sim.token()
        assert post(sim, window(sim, UNBOUNDED_TO), token=token).status_code == 200
        reused = post(sim, window(sim, UNBOUNDED_TO), token=token)
        assert reused.status_code == 401
        assert reused.json()["errors"][0]["msg"] == "jti already used"
        assert post(sim, window(sim, UNBOUNDED_TO), token=sim.token(jti=None)).status_code == 401


def test_valid_token_without_wfm_scope_gets_403():
    with make_simulator(scope_granted=False) as sim:
        assert post(sim, window(sim, UNBOUNDED_TO)).status_code == 403


def test_unknown_account_and_unknown_path_are_404(sim):
    assert post(sim, window(sim, UNBOUNDED_TO), account="acc-someone-else").status_code == 404
    stray = requests.post(sim.url + "/agentassist/api/public/analytics/callvolume", json={}, timeout=5)
    assert stray.status_code == 404
    assert stray.json() == {"errors": [{"msg": "Not Found"}]}


@pytest.mark.parametrize(
    "bad_fields",
    [
        {"toTimeStamp": "2023-06-02 10:00"},
        {"fromTimeStamp": "yesterday"},
        {"fromTimeStamp": "2023-06-02T10:00:00Z", "toTimeStamp": "2023-06-01T10:00:00Z"},
        {"toTimeStamp": None},
        {"orgId": "o-someone-else"},
        {"limit": 0},
        {"skip": -1},
    ],
)
def test_malformed_body_is_400_with_a_message(sim, bad_fields):
    response = post(sim, {**window(sim, UNBOUNDED_TO), **bad_fields})
    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"]


def test_forced_429_carries_retry_after_and_only_hits_the_next_request(sim):
    sim.fail_next(429, retry_after=3)
    throttled = post(sim, window(sim, UNBOUNDED_TO))
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert post(sim, window(sim, UNBOUNDED_TO)).status_code == 200
    assert [entry["status"] for entry in sim.requests[-2:]] == [429, 200]


def test_insert_during_paging_shifts_every_later_offset_right():
    with make_simulator() as sim:
        body = window(sim, DAY + "12:00:00Z", DAY + "10:00:00Z", limit=10)
        first = post(sim, {**body, "skip": 0}).json()
        sim.insert_during_paging(2)
        second = post(sim, {**body, "skip": 0}).json()
        third = post(sim, {**body, "skip": 10}).json()
    assert second["CallVolumeUpdate"] == first["CallVolumeUpdate"]
    [mutation] = sim.mutations
    assert mutation["kind"] == "insert" and mutation["offset"] == 10
    assert third["totalCount"] == first["totalCount"] + 2
    # The two rows that ended page one were pushed to the start of page two.
    assert third["CallVolumeUpdate"][:2] == first["CallVolumeUpdate"][8:]


def test_remove_during_paging_shifts_every_later_offset_left():
    with make_simulator() as sim:
        body = window(sim, DAY + "12:00:00Z", DAY + "10:00:00Z", limit=10)
        before = sim.records(DAY + "10:00:00Z", DAY + "12:00:00Z")
        sim.remove_during_paging(3)
        post(sim, {**body, "skip": 0})
        second = post(sim, {**body, "skip": 10}).json()
    assert sim.mutations[0]["record_ids"] == [row["_id"] for row in before[:3]]
    # Rows 10-12 of the original order slid into the already-served range and are never seen.
    assert second["CallVolumeUpdate"] == before[13:23]


# ----- hostile modes ---------------------------------------------------------------------------------

MORNING = (DAY + "10:00:00Z", DAY + "12:00:00Z")


def morning(sim: Simulator, **extra) -> dict:
    return window(sim, MORNING[1], MORNING[0], **extra)


def test_ignore_skip_serves_the_first_rows_on_every_page_and_always_has_more():
    with make_simulator(ignore_skip=True) as sim:
        expected = sim.records(*MORNING)
        pages = [post(sim, morning(sim, skip=skip, limit=5)).json() for skip in (0, 5, 10, len(expected) + 5)]
        whole = post(sim, morning(sim, skip=0, limit=100)).json()
    assert whole["CallVolumeUpdate"] == expected and whole["hasMore"] is True
    for page in pages:
        assert page["CallVolumeUpdate"] == expected[:5]
        assert page["hasMore"] is True
        assert page["totalCount"] == len(expected)


def test_ignore_skip_can_be_switched_on_while_running(sim):
    assert post(sim, morning(sim, skip=5, limit=5)).json()["CallVolumeUpdate"] == sim.records(*MORNING)[5:10]
    sim.ignore_skip = True
    try:
        assert post(sim, morning(sim, skip=5, limit=5)).json()["CallVolumeUpdate"] == sim.records(*MORNING)[:5]
    finally:
        sim.ignore_skip = False


def test_endless_has_more_fabricates_fresh_rows_inside_the_window_past_the_real_ones():
    with make_simulator(endless_has_more=True) as sim:
        real = sim.records(*MORNING)
        pages = [post(sim, morning(sim, skip=skip, limit=10)).json() for skip in range(0, len(real) + 40, 10)]
        fabricated_ids = sim.fabricated_ids
    rows = [row for page in pages for row in page["CallVolumeUpdate"]]
    assert rows[: len(real)] == real
    assert all(page["hasMore"] is True and page["totalCount"] == len(real) for page in pages)
    assert all(len(page["CallVolumeUpdate"]) == 10 for page in pages)
    made_up = rows[len(real):]
    assert len(made_up) >= 40
    ids = [row["_id"] for row in made_up]
    assert len(set(ids)) == len(ids) and not set(ids) & {row["_id"] for row in real}
    assert ids == fabricated_ids
    for row in made_up:
        assert set(row) == set(real[0])
        assert len(row["_id"]) == 24 and int(row["_id"], 16) >= 0
        assert MORNING[0][:16] <= row["intervalStartTimeStamp"][:16] < MORNING[1][:16]
        assert row["intervalEndTimeStamp"][:16] <= MORNING[1][:16]


@pytest.mark.parametrize(
    ("options", "present"),
    [
        ({"omit_has_more": True}, {"CallVolumeUpdate", "totalCount"}),
        ({"omit_total_count": True}, {"CallVolumeUpdate", "hasMore"}),
        ({"omit_has_more": True, "omit_total_count": True}, {"CallVolumeUpdate"}),
    ],
)
def test_omitted_fields_are_absent_and_the_rest_stays_correct(options, present):
    with make_simulator(**options) as sim:
        total = len(sim.records(*MORNING))
        first = post(sim, morning(sim, limit=5)).json()
        past_the_end = post(sim, morning(sim, skip=total, limit=5)).json()
    assert set(first) == set(past_the_end) == present
    assert first["CallVolumeUpdate"] == sim.records(*MORNING)[:5]
    assert past_the_end["CallVolumeUpdate"] == []
    if "totalCount" in present:
        assert first["totalCount"] == total
    if "hasMore" in present:
        assert first["hasMore"] is True and past_the_end["hasMore"] is False


def test_future_row_rides_once_on_the_first_page_decades_ahead_and_counts_in_total():
    with make_simulator(future_row=True) as sim:
        real = sim.records(*MORNING)
        future_id = sim.future_row_id
        first = post(sim, morning(sim, limit=5)).json()
        again = post(sim, morning(sim, limit=5)).json()
        served = sim.future_row_served
    assert future_id is not None and future_id not in {row["_id"] for row in real}
    assert first["CallVolumeUpdate"][:5] == real[:5]
    [extra] = first["CallVolumeUpdate"][5:]
    assert extra["_id"] == future_id
    assert extra["intervalStartTimeStamp"] == "2070-01-01T00:00:00.000Z"
    assert extra["intervalEndTimeStamp"] == "2070-01-01T00:15:00.000Z"
    assert first["totalCount"] == len(real) + 1
    assert again["CallVolumeUpdate"] == real[:5] and again["totalCount"] == len(real)
    assert served


def test_future_row_at_a_given_moment_can_be_armed_while_running(sim):
    sim.future_row = datetime(2099, 5, 5, 10, 7, tzinfo=timezone.utc)
    try:
        assert not sim.future_row_served
        rows = post(sim, morning(sim, limit=5)).json()["CallVolumeUpdate"]
        assert rows[-1]["_id"] == sim.future_row_id
        assert rows[-1]["intervalStartTimeStamp"] == "2099-05-05T10:00:00.000Z"
    finally:
        sim.future_row = None
    assert sim.future_row_id is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_answers_3xx_with_location_and_no_body_and_the_target_sees_no_request(status):
    with make_simulator() as target, make_simulator() as sim:
        location = target.url + CALLVOLUME.format(account=target.account_id)
        sim.redirect = (status, location)
        token = sim.token()
        response = requests.post(
            sim.url + CALLVOLUME.format(account=sim.account_id), json=window(sim, UNBOUNDED_TO),
            headers={"auth": token}, allow_redirects=False, timeout=5,
        )
        [received] = sim.requests
        assert target.requests == []
    assert response.status_code == status
    assert response.headers["Location"] == location
    assert response.content == b"" and response.headers["Content-Length"] == "0"
    assert received["has_auth"] is True and received["auth"] == token
    assert received["status"] == status and received["answer"] == "redirect"


def test_a_client_that_follows_a_redirect_hands_the_target_its_token_and_the_log_shows_it():
    # `requests` strips Authorization on a host change, not a custom `auth` header: the hazard the log exposes.
    with make_simulator() as target:
        location = target.url + CALLVOLUME.format(account=target.account_id)
        with make_simulator(redirect=(307, location)) as sim:
            token = sim.token()
            followed = post(sim, window(sim, UNBOUNDED_TO), token=token)
        [reached] = target.requests
    assert followed.status_code == 200
    assert reached["has_auth"] is True and reached["auth"] == token
    assert reached["body"]["orgId"] == sim.org_id


def test_redirect_refuses_statuses_that_are_not_redirects():
    with pytest.raises(ValueError):
        make_simulator(redirect=(200, "http://127.0.0.1:1/"))


def test_echo_auth_400_repeats_the_token_in_the_message_and_a_header():
    with make_simulator(echo_auth_400=True) as sim:
        token = sim.token()
        response = post(sim, window(sim, UNBOUNDED_TO), token=token)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert set(error) == {"msg"} and token in error["msg"]
    assert response.headers["X-Echo-Auth"] == token


def test_contradictory_probe_answers_an_empty_page_that_claims_more_and_windows_are_normal():
    with make_simulator(contradictory_probe=True) as sim:
        probes = [post(sim, window(sim, UNBOUNDED_TO)).json() for _ in range(2)]
        windowed = post(sim, morning(sim, limit=5)).json()
    for probe in probes:
        assert probe["CallVolumeUpdate"] == [] and probe["hasMore"] is True and probe["totalCount"] > 0
    assert windowed["CallVolumeUpdate"] == sim.records(*MORNING)[:5]
    assert [entry["answer"] for entry in sim.requests] == ["contradictory_probe"] * 2 + ["page"]


def test_contradictory_probe_once_only_misleads_the_first_probe():
    with make_simulator(contradictory_probe="once") as sim:
        first = post(sim, window(sim, UNBOUNDED_TO, limit=5)).json()
        second = post(sim, window(sim, UNBOUNDED_TO, limit=5)).json()
    assert first["CallVolumeUpdate"] == [] and first["hasMore"] is True
    assert second["CallVolumeUpdate"] == sim.records(to_ts=UNBOUNDED_TO)[:5]


def raw_request(sim: Simulator, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {CALLVOLUME.format(account=sim.account_id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"auth: {sim.token()}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def answer_within(sim: Simulator, body: dict, seconds: float) -> bytes:
    """The whole raw answer, or an AssertionError once `seconds` have passed (a dripped answer takes far longer)."""
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", sim.port), timeout=seconds) as client:
        client.sendall(raw_request(sim, body))
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
            assert time.monotonic() < deadline, "the answer is still arriving"
    return b"".join(chunks)


def test_drip_sends_the_answer_one_byte_at_a_time_each_well_within_a_read_timeout():
    with make_simulator(drip_seconds=0.02) as sim:
        with socket.create_connection(("127.0.0.1", sim.port), timeout=1.0) as client:
            client.sendall(raw_request(sim, morning(sim, limit=5)))
            chunks, started = [], time.monotonic()
            while sum(map(len, chunks)) < 30:
                chunks.append(client.recv(4096))  # a timeout here would raise
            elapsed = time.monotonic() - started
        assert sim.requests[0]["dripped"] is True
    assert b"".join(chunks).startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(chunks) >= 20 and max(map(len, chunks)) <= 3
    assert elapsed >= 25 * 0.02


def test_drip_first_n_lets_a_client_that_cuts_and_retries_get_a_prompt_answer():
    with make_simulator(drip_seconds=0.05, drip_first_n=1) as sim:
        with socket.create_connection(("127.0.0.1", sim.port), timeout=1.0) as client:
            client.sendall(raw_request(sim, morning(sim, limit=5)))
            assert client.recv(4096) == b"H"
        retried = answer_within(sim, morning(sim, limit=5), seconds=1)
        assert [entry["dripped"] for entry in sim.requests] == [True, False]
    head, body = retried.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(body)["CallVolumeUpdate"] == sim.records(*MORNING)[:5]


def test_drip_stops_as_soon_as_the_simulator_stops():
    sim = make_simulator(drip_seconds=5)
    sim.start()
    threads_before = set(threading.enumerate())
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as client:
        client.sendall(raw_request(sim, morning(sim)))
        assert client.recv(1) == b"H"
        [handler] = [thread for thread in set(threading.enumerate()) - threads_before if "request" in thread.name]
        started = time.monotonic()
        sim.stop()
        handler.join(timeout=2)
        assert not handler.is_alive()
        assert client.recv(4096) == b""
    assert time.monotonic() - started < 2


def test_drip_can_be_switched_on_while_running(sim):
    sim.drip(0.001, first_n=1)
    try:
        assert post(sim, morning(sim, limit=1)).status_code == 200
        assert answer_within(sim, morning(sim, limit=1), seconds=1).startswith(b"HTTP/1.1 200 OK\r\n")
        assert [entry["dripped"] for entry in sim.requests[-2:]] == [True, False]
    finally:
        sim.drip(None)


def served_then_broken(kind: str) -> tuple[Simulator, list[requests.Response]]:
    sim = make_simulator(fail_forever_after=2, fail_forever_kind=kind)
    sim.start()
    served = [post(sim, morning(sim, limit=5)) for _ in range(2)]
    assert all(response.json()["CallVolumeUpdate"] == sim.records(*MORNING)[:5] for response in served)
    return sim, served


def test_fail_forever_not_json_answers_html_200s_for_good():
    sim, _ = served_then_broken("not_json")
    with sim:
        broken = [post(sim, morning(sim, limit=5)) for _ in range(3)]
    for response in broken:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html"
        with pytest.raises(requests.exceptions.JSONDecodeError):
            response.json()
    assert [entry["answer"] for entry in sim.requests] == ["page"] * 2 + ["fail_forever"] * 3


def test_fail_forever_reset_resets_every_connection_for_good():
    sim, _ = served_then_broken("reset")
    with sim:
        for _ in range(3):
            with pytest.raises(requests.exceptions.ConnectionError):
                post(sim, morning(sim, limit=5))
    assert [entry["status"] for entry in sim.requests] == [200, 200, 0, 0, 0]


def test_fail_forever_bad_encoding_labels_a_plain_body_gzip_for_good():
    sim, _ = served_then_broken("bad_encoding")
    with sim:
        with pytest.raises(requests.exceptions.ContentDecodingError):
            post(sim, morning(sim, limit=5))
        connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
        payload = json.dumps(morning(sim, limit=5))
        connection.request("POST", CALLVOLUME.format(account=sim.account_id), body=payload,
                           headers={"auth": sim.token(), "Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
    assert response.status == 200 and response.getheader("Content-Encoding") == "gzip"
    assert not body.startswith(b"\x1f\x8b")
    with pytest.raises(OSError):
        gzip.decompress(body)


def test_fail_forever_counts_successes_from_when_it_is_set(sim):
    for _ in range(3):
        post(sim, morning(sim, limit=1))
    sim.fail_forever(1, "not_json")
    try:
        assert post(sim, morning(sim, limit=1)).headers["Content-Type"] == "application/json"
        assert post(sim, morning(sim, limit=1)).headers["Content-Type"] == "text/html"
    finally:
        sim.fail_forever(None)
    assert post(sim, morning(sim, limit=1)).headers["Content-Type"] == "application/json"


def test_fail_forever_refuses_an_unknown_kind():
    with pytest.raises(ValueError):
        make_simulator(fail_forever_after=1, fail_forever_kind="slow")


# ----- rate limit ------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(**options) -> tuple[Simulator, FakeClock]:
    sim = make_simulator(**options)
    clock = FakeClock()
    sim.budget.clock = clock
    sim.start()
    return sim, clock


def test_past_the_limit_requests_get_kore_ais_429_without_retry_after_by_default():
    sim, _ = limited(rate_limit_per_minute=3)
    with sim:
        statuses = [post(sim, morning(sim)).status_code for _ in range(3)]
        throttled = post(sim, morning(sim))
    assert statuses == [200] * 3
    assert throttled.status_code == 429
    assert throttled.json() == {"errors": [{"msg": RATE_LIMIT_MESSAGE}]}
    assert RATE_LIMIT_MESSAGE == "You've exceeded the per-minute rate limit. Please wait for sometime before retrying."
    assert "Retry-After" not in throttled.headers
    assert [entry["rate_limited"] for entry in sim.requests] == [False] * 3 + [True]
    assert sim.rate_limited_count == 1 and sim.rate_limited_per_account == {sim.account_id: 1}
    assert sim.received_per_account == {sim.account_id: 4}


def test_the_window_rolls_over_sixty_seconds():
    sim, clock = limited(rate_limit_per_minute=2, count_refused=False)
    with sim:
        assert post(sim, morning(sim)).status_code == 200
        clock.now += 30
        assert post(sim, morning(sim)).status_code == 200
        clock.now += 29.9
        assert post(sim, morning(sim)).status_code == 429
        clock.now += 0.1  # the first request is 60 s old: one slot frees
        assert post(sim, morning(sim)).status_code == 200
        assert post(sim, morning(sim)).status_code == 429
        assert sim.window_usage() == 2


@pytest.mark.parametrize(("count_refused", "status_later"), [(True, 429), (False, 200)])
def test_refused_requests_count_toward_the_window_unless_told_not_to(count_refused, status_later):
    sim, clock = limited(rate_limit_per_minute=1, count_refused=count_refused)
    with sim:
        assert post(sim, morning(sim)).status_code == 200
        clock.now += 30
        assert post(sim, morning(sim)).status_code == 429
        clock.now += 31  # the admitted request has left the window; the refused one has not
        assert post(sim, morning(sim)).status_code == status_later


def test_retry_after_is_sent_when_configured():
    sim, _ = limited(rate_limit_per_minute=1, rate_limit_retry_after=7)
    with sim:
        post(sim, morning(sim))
        assert post(sim, morning(sim)).headers["Retry-After"] == "7"


@pytest.mark.parametrize(("count_refused", "seconds"), [(True, "50"), (False, "40")])
def test_exact_retry_after_is_the_wait_until_the_window_frees_a_slot(count_refused, seconds):
    sim, clock = limited(rate_limit_per_minute=2, rate_limit_retry_after="exact", count_refused=count_refused)
    with sim:
        post(sim, morning(sim))
        clock.now += 10
        post(sim, morning(sim))
        clock.now += 10
        throttled = post(sim, morning(sim))
        assert throttled.headers["Retry-After"] == seconds
        clock.now += int(seconds)
        assert post(sim, morning(sim)).status_code == 200


def test_requests_refused_for_auth_or_sent_to_other_endpoints_spend_the_budget_too():
    sim, _ = limited(rate_limit_per_minute=3)
    with sim:
        assert post(sim, morning(sim), token="not-a-jwt").status_code == 401
        # POST: the agents endpoint answers GET only, so this is a 404 (the budget is spent all the same).
        agents = requests.post(
            sim.url + f"/agentassist/api/public/analytics/account/{sim.account_id}/agents", json={}, timeout=5
        )
        assert agents.status_code == 404
        assert post(sim, morning(sim)).status_code == 200
        assert post(sim, morning(sim)).status_code == 429
    assert sim.received_per_account == {sim.account_id: 4}


def test_each_account_has_its_own_budget():
    sim, _ = limited(rate_limit_per_minute=1)
    with sim:
        assert post(sim, morning(sim)).status_code == 200
        assert post(sim, morning(sim), account="acc-other").status_code == 404
        assert post(sim, morning(sim), account="acc-other").status_code == 429
        assert post(sim, morning(sim)).status_code == 429
    assert sim.received_per_account == {sim.account_id: 2, "acc-other": 2}
    assert sim.rate_limited_per_account == {sim.account_id: 1, "acc-other": 1}


def test_a_neighbour_on_the_same_account_shares_the_budget():
    sim, _ = limited(rate_limit_per_minute=3)
    with sim:
        neighbour = sim.neighbour(every=10)
        assert [neighbour.poll_once(), neighbour.poll_once()] == [200, 200]
        assert post(sim, morning(sim)).status_code == 200
        assert post(sim, morning(sim)).status_code == 429
        assert neighbour.poll_once() == 429
    assert neighbour.rate_limited == 1 and neighbour.sent == 3
    by_neighbour = [entry["rate_limited"] for entry in sim.requests if entry["user_agent"] == NEIGHBOUR_USER_AGENT]
    assert by_neighbour == [False, False, True]


def test_a_running_neighbour_polls_on_its_own():
    with make_simulator() as sim:
        with sim.neighbour(every=0.05) as neighbour:
            deadline = time.monotonic() + 5
            while neighbour.sent < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert neighbour.statuses[200] >= 3
        assert all(entry["user_agent"] == NEIGHBOUR_USER_AGENT for entry in sim.requests)


def test_the_limit_can_be_switched_on_while_running(sim):
    for _ in range(3):
        post(sim, morning(sim))
    sim.rate_limit_per_minute = 2
    try:
        assert [post(sim, morning(sim)).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        sim.rate_limit_per_minute = None
    assert post(sim, morning(sim)).status_code == 200


# ----- request log and CLI ---------------------------------------------------------------------------

def test_request_log_records_headers_path_and_arrival():
    with make_simulator() as sim:
        token = sim.token()
        before = time.monotonic()
        post(sim, morning(sim), token=token)
        requests.post(sim.url + CALLVOLUME.format(account=sim.account_id) + "?x=1", data=b"{}",
                      headers={"Content-Type": "text/plain"}, timeout=5)
        with_token, without = sim.requests
    assert with_token["method"] == "POST" and with_token["path"] == CALLVOLUME.format(account=sim.account_id)
    assert with_token["account_id"] == sim.account_id
    assert with_token["has_auth"] is True and with_token["auth"] == token and with_token["headers"]["auth"] == token
    assert with_token["content_type"] == "application/json"
    assert with_token["user_agent"].startswith("python-requests/")
    assert with_token["claims"]["appId"] == sim.client_id
    assert before <= with_token["received_at"] <= without["received_at"] <= time.monotonic()
    assert with_token["status"] == 200 and with_token["answer"] == "page"
    assert with_token["rate_limited"] is False and with_token["dripped"] is False
    assert without["path"] == with_token["path"]
    assert without["has_auth"] is False and without["auth"] is None and without["claims"] is None
    assert without["content_type"] == "text/plain" and without["status"] == 401


def test_cli_turns_options_into_behaviours_and_exits_cleanly_on_sigterm():
    command = [
        sys.executable, "-m", "simulator", "--queues", "2", "--days", "1", "--omit-total-count", "--future-row",
        "--rate-limit-per-minute", "2", "--rate-limit-retry-after", "9",
    ]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True)
    try:
        config = json.loads(process.stdout.readline())["config"]
        token = jwt.encode({"appId": config["credentials"]["client_id"]},
                           config["credentials"]["client_secret"], algorithm="HS256")
        url = config["host"] + CALLVOLUME.format(account=config["account_id"])
        body = {"orgId": config["org_id"], "toTimeStamp": "2100-01-01T00:00:00Z", "limit": 5}
        answers = [requests.post(url, json=body, headers={"auth": token}, timeout=5) for _ in range(3)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    first = answers[0].json()
    assert "totalCount" not in first and first["hasMore"] is True
    assert first["CallVolumeUpdate"][-1]["intervalStartTimeStamp"].startswith("2070-")
    assert answers[1].status_code == 200
    assert answers[2].status_code == 429 and answers[2].headers["Retry-After"] == "9"
