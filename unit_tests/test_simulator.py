"""Pins the call-volume simulator's semantics that connector tests rely on.

Each of the four time-filter rules at aligned window edges (where they must agree, which is what
makes aligned slices safe for a connector) and at unaligned ones (where they must differ), page cap with hasMore and
totalCount, `records()` agreeing with what paging returns, the auth/scope/account/body error codes,
a forced 429 carrying Retry-After, and rows inserted or removed mid-paging shifting later offsets.
"""

from datetime import datetime, timezone

import jwt
import pytest
import requests

from simulator import Simulator

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
