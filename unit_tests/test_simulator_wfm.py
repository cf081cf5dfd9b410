"""Pins the simulator's other three WFM endpoints (queues, agents, agent activity), on the wire with plain `requests`.

Each endpoint's shape; one consistent account (queue ids are the call-volume rows' queueIds, activity names
only the agents `/agents` lists, each agent works around its queue's busiest hour); agents paging with a
page cap, past the end and with the offset ignored; the activity filter inclusive at both ends, its order,
the answer cap keeping the earliest events, events sharing a second, events held back and released late;
and what the four endpoints share: auth, scope, account, rate limit, faults, latency, the request log, the CLI.
The call-volume rows are pinned byte for byte, so the new endpoints can be seen not to have moved them.
"""

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
import requests

from simulator import RATE_LIMIT_MESSAGE, Faults, Simulator, format_event_time, parse_event_time

DATA_START = datetime(2023, 6, 1, tzinfo=timezone.utc)  # a Thursday
HORIZON = datetime(2023, 6, 3, tzinfo=timezone.utc)
QUEUES = 3
ACCOUNT = "/agentassist/api/public/analytics/account/{account}/"
AGENT_ID = re.compile(r"a-[0-9a-f]{7}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EVENT_TIME = re.compile(r"(\d{2})/(\d{2})/(\d{4}) ([1-9]?\d):(\d{2}):(\d{2})")
ACTIVITIES = {"ready", "notready", "busy", "acw", "offline"}
WHOLE = {"fromTimeStamp": "2023-06-01T00:00:00Z", "toTimeStamp": "2023-06-03T00:00:00Z"}
# sha256 of the answer to one call-volume request for every row of make_simulator(), taken before these
# endpoints existed: generated rows must stay byte-identical for the same constructor arguments.
CALLVOLUME_ANSWER_SHA256 = "c866737efbaad6a15dfa22b64ff5853846740d9c00d105569333836b7f1af26d"


def make_simulator(**options) -> Simulator:
    return Simulator(queues=QUEUES, data_start=DATA_START, horizon=HORIZON, **options)


def get(sim: Simulator, endpoint: str, params=None, token: str | None = None, account: str | None = None):
    url = sim.url + ACCOUNT.format(account=account or sim.account_id) + endpoint
    return requests.get(url, params=params, headers={"auth": token or sim.token()}, timeout=5)


def activity(sim: Simulator, from_ts: str, to_ts: str) -> list[dict]:
    response = get(sim, "agentactivity", {"fromTimeStamp": from_ts, "toTimeStamp": to_ts})
    assert response.status_code == 200, response.text
    return response.json()["AgentUpdates"]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_key(event: dict) -> tuple:
    return event["AgentId"], event["EventTime"], event["Activity"], event["ReasonCode"]


@pytest.fixture(scope="module")
def sim():
    with make_simulator() as simulator:
        yield simulator


# ----- queues --------------------------------------------------------------------------------------------

def test_queues_are_a_bare_array_of_the_call_volume_queues_with_their_names(sim):
    response = get(sim, "queues")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    queues = response.json()
    assert isinstance(queues, list) and len(queues) == QUEUES
    assert all(list(queue) == ["accountId", "collectionPointId", "description"] for queue in queues)
    assert {queue["accountId"] for queue in queues} == {sim.account_id}
    names_in_rows = {row["queueId"]: row["queueName"] for row in sim.records(to_ts=HORIZON)}
    assert {queue["collectionPointId"]: queue["description"] for queue in queues} == names_in_rows
    assert queues == sim.queues()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("description", ["description"] * 3),
        ("Description", ["Description"] * 3),
        ("mixed", ["description", "Description", "description"]),
    ],
)
def test_queue_description_key_is_a_choice_and_mixed_alternates(key, expected):
    with make_simulator(queue_description_key=key) as sim:
        queues = get(sim, "queues").json()
    assert [list(queue)[2] for queue in queues] == expected
    assert [queue[name] for queue, name in zip(queues, expected)] == ["Billing", "Sales", "Support"]
    assert queues == sim.queues()


def test_queue_description_key_refuses_anything_else():
    with pytest.raises(ValueError):
        make_simulator(queue_description_key="name")


# ----- agents --------------------------------------------------------------------------------------------

def test_agents_are_a_bare_array_three_per_queue_by_default_with_kore_ais_id_shape(sim):
    agents = get(sim, "agents", {"offset": 0, "limit": 100}).json()
    assert len(agents) == 3 * QUEUES == sim.agent_count
    assert all(list(agent) == ["accountId", "agentId", "firstName", "lastName"] for agent in agents)
    assert all(AGENT_ID.fullmatch(agent["agentId"]) for agent in agents)
    assert len({agent["agentId"] for agent in agents}) == len(agents)
    assert {agent["accountId"] for agent in agents} == {sim.account_id}
    assert all(agent["firstName"] and agent["lastName"] for agent in agents)
    assert agents == sim.agents()


def test_agents_are_drawn_from_the_seed_and_their_number_is_configurable():
    assert make_simulator().agents() == make_simulator().agents()
    assert make_simulator(seed=8).agents() != make_simulator().agents()
    with make_simulator(agents=23) as sim:
        agents = get(sim, "agents", {"limit": 100}).json()
    assert len(agents) == 23 == sim.agent_count
    assert agents[:9] == make_simulator().agents()


def test_agents_without_offset_or_limit_are_the_first_five(sim):
    assert get(sim, "agents").json() == sim.agents()[:5]
    assert get(sim, "agents", {"limit": 2}).json() == sim.agents()[:2]
    assert get(sim, "agents", {"offset": 7}).json() == sim.agents()[7:12]


def test_agents_pages_follow_offset_and_a_page_past_the_end_is_empty(sim):
    pages = [get(sim, "agents", {"offset": offset, "limit": 4}).json() for offset in (0, 4, 8)]
    assert [len(page) for page in pages] == [4, 4, 1]
    assert [agent for page in pages for agent in page] == sim.agents()
    assert get(sim, "agents", {"offset": 9, "limit": 4}).json() == []
    assert get(sim, "agents", {"offset": 1000, "limit": 4}).json() == []


def test_agents_page_cap_serves_at_most_that_many_whatever_limit_asks():
    with make_simulator(agents_page_cap=2) as sim:
        first = get(sim, "agents", {"offset": 0, "limit": 5}).json()
        collected, offset = [], 0
        while page := get(sim, "agents", {"offset": offset, "limit": 5}).json():
            assert len(page) <= 2
            collected += page
            offset += len(page)
    assert first == sim.agents()[:2]
    assert collected == sim.agents()


def test_ignore_offset_serves_the_first_page_for_every_offset():
    with make_simulator(ignore_offset=True) as sim:
        pages = [get(sim, "agents", {"offset": offset, "limit": 3}).json() for offset in (0, 3, 6, 100)]
    assert pages == [sim.agents()[:3]] * 4


def test_agents_knobs_can_be_changed_on_a_running_simulator(sim):
    sim.agents_page_cap, sim.ignore_offset = 1, True
    try:
        assert get(sim, "agents", {"offset": 3, "limit": 5}).json() == sim.agents()[:1]
    finally:
        sim.agents_page_cap, sim.ignore_offset = None, False
    assert get(sim, "agents", {"offset": 3, "limit": 5}).json() == sim.agents()[3:8]


@pytest.mark.parametrize(
    "query", ["offset=-1", "offset=abc", "offset=", "limit=0", "limit=1.5", "limit=10001", "offset=1&offset=2"]
)
def test_agents_garbage_offset_or_limit_is_a_400_in_kore_ais_error_shape(sim, query):
    response = requests.get(
        sim.url + ACCOUNT.format(account=sim.account_id) + "agents?" + query, headers={"auth": sim.token()}, timeout=5
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert set(error) == {"msg"} and error["msg"]


# ----- agent activity: shape and consistency ---------------------------------------------------------

def test_activity_has_kore_ais_shape_and_event_time_spelling(sim):
    response = get(sim, "agentactivity", WHOLE)
    answer = response.json()
    assert list(answer) == ["accountId", "AgentUpdates"] and answer["accountId"] == sim.account_id
    events = answer["AgentUpdates"]
    assert len(events) > 500
    assert all(list(event) == ["AgentId", "EventTime", "Activity", "ReasonCode"] for event in events)
    assert {event["Activity"] for event in events} == ACTIVITIES
    assert {event["ReasonCode"] for event in events} == {"1", "2", "3", "4", "5"}
    hours = set()
    for event in events:
        match = EVENT_TIME.fullmatch(event["EventTime"])
        assert match, event["EventTime"]
        hours.add(match.group(4))
        assert format_event_time(int(parse_event_time(event["EventTime"]).timestamp())) == event["EventTime"]
    # Morning hours are written with one digit, as in the reference's "10/20/2020 2:13:12"; the clock runs to 23.
    assert {"5", "7", "9", "12", "20"} <= hours and not any(hour.startswith("0") for hour in hours)
    assert response.content == get(sim, "agentactivity", WHOLE).content
    assert events == sim.activity(WHOLE["fromTimeStamp"], WHOLE["toTimeStamp"]) == sim.activity()


def test_event_time_parses_leniently_and_formats_like_the_reference():
    assert parse_event_time("10/20/2020 2:13:12") == datetime(2020, 10, 20, 2, 13, 12, tzinfo=timezone.utc)
    assert format_event_time(datetime(2020, 10, 20, 2, 13, 12, tzinfo=timezone.utc).timestamp()) == "10/20/2020 2:13:12"
    assert format_event_time(datetime(2020, 1, 2, 23, 0, 5, tzinfo=timezone.utc).timestamp()) == "01/02/2020 23:00:05"
    with pytest.raises(ValueError):
        parse_event_time("2020-10-20T02:13:12Z")


def test_activity_is_sorted_by_time_then_agent(sim):
    events = sim.activity()
    order = [(parse_event_time(event["EventTime"]), event["AgentId"]) for event in events]
    assert order == sorted(order)


def test_activity_names_only_listed_agents_and_every_agent_works(sim):
    agent_ids = {agent["agentId"] for agent in sim.agents()}
    assert {event["AgentId"] for event in sim.activity()} == agent_ids


def test_each_agent_works_an_eight_hour_shift_around_its_queues_busiest_hour_several_changes_an_hour(sim):
    offered_by_hour: dict[str, Counter] = defaultdict(Counter)
    for row in sim.records(to_ts=HORIZON):
        offered_by_hour[row["queueId"]][int(row["intervalStartTimeStamp"][11:13])] += row["offeredContacts"]
    busiest = [offered_by_hour[queue["collectionPointId"]].most_common(1)[0][0] for queue in sim.queues()]
    by_agent_day: dict[tuple, list[datetime]] = defaultdict(list)
    for event in sim.activity():
        moment = parse_event_time(event["EventTime"])
        by_agent_day[event["AgentId"], moment.date()].append(moment)
    assert len(by_agent_day) >= sim.agent_count  # nearly every agent works on both (week)days
    for index, agent in enumerate(sim.agents()):
        for day in (DATA_START.date(), DATA_START.date() + timedelta(days=1)):
            moments = by_agent_day.get((agent["agentId"], day))
            if moments is None:
                continue  # a day off
            hours = {moment.hour for moment in moments}
            assert max(hours) - min(hours) == 7 and len(hours) == 8
            assert min(hours) <= busiest[index % QUEUES] <= max(hours)
            assert len(moments) >= 3 * 8


def test_activity_lies_between_data_start_and_the_horizon_and_grows_with_it():
    with make_simulator() as sim:
        moments = [parse_event_time(event["EventTime"]) for event in sim.activity()]
        assert DATA_START <= min(moments) and max(moments) <= HORIZON
        sim.set_horizon(datetime(2023, 6, 1, 12, tzinfo=timezone.utc))
        morning = activity(sim, "2023-06-01T00:00:00Z", "2023-06-05T00:00:00Z")
        assert morning and max(parse_event_time(event["EventTime"]) for event in morning).hour < 12
        sim.set_horizon(datetime(2023, 6, 4, tzinfo=timezone.utc))
        later = activity(sim, "2023-06-03T00:00:00Z", "2023-06-05T00:00:00Z")
    assert later and all(parse_event_time(event["EventTime"]).date().day == 3 for event in later)


def test_no_event_precedes_a_data_start_in_the_middle_of_a_day():
    start = datetime(2023, 6, 1, 11, tzinfo=timezone.utc)
    with Simulator(queues=QUEUES, data_start=start, horizon=HORIZON) as sim:
        served = activity(sim, "2023-05-31T00:00:00Z", "2023-06-01T12:00:00Z")
    assert served and min(parse_event_time(event["EventTime"]) for event in served) >= start
    assert served == make_simulator().activity(start, "2023-06-01T12:00:00Z")


def test_activity_is_drawn_from_the_seed():
    assert make_simulator().activity() == make_simulator().activity()
    assert make_simulator(seed=8).activity() != make_simulator().activity()


def test_a_default_account_has_changes_of_one_agent_sharing_a_second_and_keys_are_unique():
    sim = Simulator(horizon=datetime(2024, 3, 5, 7, 30, tzinfo=timezone.utc))
    events = sim.activity()
    keys = [event_key(event) for event in events]
    assert len(set(keys)) == len(keys)
    same_second: dict[tuple, list[tuple]] = defaultdict(list)
    for agent_id, event_time, activity_name, reason in keys:
        same_second[agent_id, event_time].append((activity_name, reason))
    shared = [changes for changes in same_second.values() if len(changes) > 1]
    assert sum(1 for changes in shared if len({name for name, _ in changes}) > 1) >= 5
    # Sometimes even the Activity is the same and only the ReasonCode tells the two apart.
    assert any(len({name for name, _ in changes}) == 1 for changes in shared)


# ----- agent activity: filter, order, cap --------------------------------------------------------------

def test_activity_filter_is_inclusive_at_both_ends(sim):
    event = sim.activity()[200]
    moment = parse_event_time(event["EventTime"])
    at_that_second = [other for other in sim.activity() if other["EventTime"] == event["EventTime"]]
    one = timedelta(seconds=1)
    assert activity(sim, iso(moment), iso(moment)) == at_that_second
    assert activity(sim, iso(moment), iso(moment + 10 * one))[: len(at_that_second)] == at_that_second
    assert activity(sim, iso(moment - 10 * one), iso(moment))[-len(at_that_second):] == at_that_second
    assert event not in activity(sim, iso(moment + one), iso(moment + 10 * one))
    assert event not in activity(sim, iso(moment - 10 * one), iso(moment - one))
    assert sim.activity(moment, moment) == at_that_second


def test_activity_window_matches_the_accessor(sim):
    served = activity(sim, "2023-06-01T10:00:00Z", "2023-06-01T11:30:00Z")
    assert served == sim.activity("2023-06-01T10:00:00Z", "2023-06-01T11:30:00Z")
    assert served and all(
        datetime(2023, 6, 1, 10, tzinfo=timezone.utc) <= parse_event_time(event["EventTime"])
        <= datetime(2023, 6, 1, 11, 30, tzinfo=timezone.utc)
        for event in served
    )
    # requests encodes "+" and ":" as it should; "+00:00" is UTC too.
    assert activity(sim, "2023-06-01T10:00:00+00:00", "2023-06-01T11:30:00.000Z") == served


@pytest.mark.parametrize(
    "params",
    [
        {"toTimeStamp": "2023-06-02T00:00:00Z"},
        {"fromTimeStamp": "2023-06-01T00:00:00Z"},
        {"fromTimeStamp": "yesterday", "toTimeStamp": "2023-06-02T00:00:00Z"},
        {"fromTimeStamp": "2023-06-01 00:00:00", "toTimeStamp": "2023-06-02T00:00:00Z"},
        {"fromTimeStamp": "2023-06-02T00:00:00Z", "toTimeStamp": "2023-06-01T00:00:00Z"},
        {"fromTimeStamp": ["2023-06-01T00:00:00Z", "2023-06-01T01:00:00Z"], "toTimeStamp": "2023-06-02T00:00:00Z"},
    ],
)
def test_activity_needs_both_timestamps_in_iso_utc_and_in_order(sim, params):
    response = get(sim, "agentactivity", params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"]


def test_an_unencoded_plus_reads_as_a_space_and_is_refused(sim):
    url = sim.url + ACCOUNT.format(account=sim.account_id) + "agentactivity"
    query = "?fromTimeStamp=2023-06-01T10:00:00+00:00&toTimeStamp=2023-06-01T11:00:00Z"
    assert requests.get(url + query, headers={"auth": sim.token()}, timeout=5).status_code == 400


def test_activity_order_desc_reverses_the_whole_order():
    with make_simulator(activity_order="desc") as sim:
        served = activity(sim, "2023-06-01T10:00:00Z", "2023-06-01T12:00:00Z")
    ascending = make_simulator().activity("2023-06-01T10:00:00Z", "2023-06-01T12:00:00Z")
    assert served == ascending[::-1] == sim.activity("2023-06-01T10:00:00Z", "2023-06-01T12:00:00Z")


def test_activity_answer_cap_silently_keeps_the_earliest_events_of_the_window():
    with make_simulator(activity_answer_cap=7) as sim:
        answer = get(sim, "agentactivity", WHOLE).json()
        later = activity(sim, "2023-06-02T10:00:00Z", "2023-06-02T23:00:00Z")
        short = activity(sim, "2023-06-01T10:00:00Z", "2023-06-01T10:04:00Z")
        sim.activity_order = "desc"
        capped_desc = activity(sim, "2023-06-01T00:00:00Z", "2023-06-03T00:00:00Z")
    assert list(answer) == ["accountId", "AgentUpdates"]
    everything = make_simulator().activity()
    assert answer["AgentUpdates"] == everything[:7]
    assert later == make_simulator().activity("2023-06-02T10:00:00Z", "2023-06-02T23:00:00Z")[:7]
    assert short == make_simulator().activity("2023-06-01T10:00:00Z", "2023-06-01T10:04:00Z")
    assert len(short) < 7
    assert capped_desc == everything[:7][::-1]
    # The accessor is the truth: the cap does not apply to it.
    assert len(sim.activity()) == len(everything)


def test_activity_answer_cap_refuses_zero():
    with pytest.raises(ValueError):
        make_simulator(activity_answer_cap=0)


# ----- agent activity: late events ---------------------------------------------------------------------

def test_held_back_events_are_served_only_once_released():
    with make_simulator() as sim:
        everything = sim.activity()
        held = sim.hold_back_activity(5)
        assert held == [event_key(event) for event in everything[-5:]] == sim.held_activity
        first_sync = activity(sim, *WHOLE.values())
        assert first_sync == everything[:-5] == sim.activity()
        assert sim.release_activity() == held
        assert sim.held_activity == []
        # A client that re-reads the window it already synced finds the late events; one that starts
        # after what it last saw finds them too, since they are the newest.
        reread = activity(sim, *WHOLE.values())
        last_seen = parse_event_time(first_sync[-1]["EventTime"])
        after = activity(sim, iso(last_seen + timedelta(seconds=1)), WHOLE["toTimeStamp"])
    assert reread == everything
    assert set(map(event_key, everything[-5:])) <= set(map(event_key, after))


def test_late_events_of_one_agent_arrive_behind_later_events_of_others():
    with make_simulator() as sim:
        agent_id = sim.agents()[0]["agentId"]
        held = sim.hold_back_activity(3, agent_id=agent_id)
        assert {key[0] for key in held} == {agent_id}
        newest = sim.activity()[-1]
        assert parse_event_time(newest["EventTime"]) >= parse_event_time(held[-1][1])
        cursor = parse_event_time(newest["EventTime"])
        seen = activity(sim, *WHOLE.values())
        sim.release_activity(held[:2])
        assert sim.held_activity == held[2:]
        # A client that only reads after its cursor misses them; a window reaching back finds them.
        assert not set(held[:2]) & set(map(event_key, activity(sim, iso(cursor), WHOLE["toTimeStamp"])))
        assert parse_event_time(held[0][1]) < cursor - timedelta(hours=6)
        lookback = activity(sim, iso(cursor - timedelta(hours=24)), WHOLE["toTimeStamp"])
    assert not set(held) & set(map(event_key, seen))
    assert set(held[:2]) <= set(map(event_key, lookback))
    assert held[2] not in set(map(event_key, lookback))


def test_hold_back_by_keys_refuses_unknown_keys():
    with make_simulator() as sim:
        [key] = [event_key(event) for event in sim.activity()[10:11]]
        assert sim.hold_back_activity(keys=[key]) == [key]
        assert key not in set(map(event_key, sim.activity()))
        with pytest.raises(KeyError):
            sim.hold_back_activity(keys=[("a-nobody", "06/01/2023 1:00:00", "ready", "1")])


# ----- what every endpoint shares ------------------------------------------------------------------------

ENDPOINTS = [("queues", None), ("agents", {"offset": 0, "limit": 5}), ("agentactivity", WHOLE)]


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_bad_token_missing_scope_and_unknown_account_are_refused_on_every_endpoint(sim, endpoint, params):
    forged = jwt.encode({"appId": sim.client_id}, "not-the-secret-but-long-enough-for-hs256", algorithm="HS256")
    refused = get(sim, endpoint, params, token=forged)
    assert refused.status_code == 401
    assert refused.json() == {"errors": [{"msg": "Invalid or expired token"}]}
    no_token = requests.get(sim.url + ACCOUNT.format(account=sim.account_id) + endpoint, params=params, timeout=5)
    assert no_token.status_code == 401
    assert get(sim, endpoint, params, account="acc-someone-else").status_code == 404
    with make_simulator(scope_granted=False) as denied:
        assert get(denied, endpoint, params).status_code == 403


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_enforced_jti_applies_to_every_endpoint(endpoint, params):
    with make_simulator(enforce_jti=True) as sim:
        token = sim.token()
        assert get(sim, endpoint, params, token=token).status_code == 200
        reused = get(sim, endpoint, params, token=token)
    assert reused.status_code == 401 and reused.json()["errors"][0]["msg"] == "jti already used"


@pytest.mark.parametrize("endpoint", ["queues", "agents", "agentactivity"])
def test_the_wfm_endpoints_answer_get_only(sim, endpoint):
    url = sim.url + ACCOUNT.format(account=sim.account_id) + endpoint
    response = requests.post(url, json={}, headers={"auth": sim.token()}, timeout=5)
    assert response.status_code == 404 and response.json() == {"errors": [{"msg": "Not Found"}]}
    assert get(sim, "callvolume").status_code == 404


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_counts_requests_to_every_endpoint_of_the_account():
    sim = make_simulator(rate_limit_per_minute=4, rate_limit_retry_after=5)
    sim.budget.clock = FakeClock()
    with sim:
        callvolume = requests.post(
            sim.url + ACCOUNT.format(account=sim.account_id) + "callvolume",
            json={"orgId": sim.org_id, "toTimeStamp": "2023-06-02T00:00:00Z"}, headers={"auth": sim.token()}, timeout=5,
        )
        statuses = [callvolume.status_code] + [get(sim, endpoint, params).status_code for endpoint, params in ENDPOINTS]
        throttled = [get(sim, endpoint, params) for endpoint, params in ENDPOINTS]
    assert statuses == [200] * 4
    for response in throttled:
        assert response.status_code == 429 and response.headers["Retry-After"] == "5"
        assert response.json() == {"errors": [{"msg": RATE_LIMIT_MESSAGE}]}
    assert sim.received_per_account == {sim.account_id: 7}
    assert sim.rate_limited_per_account == {sim.account_id: 3}


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_fail_next_and_random_faults_hit_every_endpoint(endpoint, params):
    with make_simulator() as sim:
        sim.fail_next(503)
        sim.fail_next(429, retry_after=4)
        assert get(sim, endpoint, params).status_code == 503
        throttled = get(sim, endpoint, params)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "4"
        good = get(sim, endpoint, params)
        assert good.status_code == 200
        sim.faults = Faults(rate_truncated=1.0)
        truncated = get(sim, endpoint, params)
        sim.faults = Faults(rate_not_json=1.0)
        html = get(sim, endpoint, params)
        sim.faults = Faults(rate_reset=1.0)
        with pytest.raises(requests.exceptions.ConnectionError):
            get(sim, endpoint, params)
        sim.faults = Faults(rate_hang=1.0, hang_seconds=5)
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(sim.url + ACCOUNT.format(account=sim.account_id) + endpoint, params=params,
                         headers={"auth": sim.token()}, timeout=0.3)
        answers = [entry["answer"] for entry in sim.requests]
    assert truncated.status_code == 200 and truncated.content == good.content[: len(good.content) // 2]
    assert html.status_code == 200 and html.headers["Content-Type"] == "text/html"
    assert answers == ["fault", "fault", "page", "fault", "fault", "fault", "fault"]


@pytest.mark.parametrize(("endpoint", "params"), ENDPOINTS)
def test_latency_applies_to_every_endpoint(endpoint, params):
    with make_simulator(latency=0.3) as sim:
        started = time.monotonic()
        assert get(sim, endpoint, params).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_request_log_records_method_endpoint_and_query_parameters(sim):
    sim.reset_log()
    get(sim, "agents", {"offset": 5, "limit": 5})
    get(sim, "agentactivity", WHOLE)
    requests.get(sim.url + ACCOUNT.format(account=sim.account_id) + "agents?offset=1&offset=2", timeout=5)
    get(sim, "queues")
    agents, activity_entry, repeated, queues = sim.requests
    assert agents["method"] == "GET" and agents["endpoint"] == "agents"
    assert agents["path"] == ACCOUNT.format(account=sim.account_id) + "agents"
    assert agents["query"] == {"offset": "5", "limit": "5"} and agents["status"] == 200
    assert agents["answer"] == "page" and agents["body"] is None and agents["account_id"] == sim.account_id
    assert activity_entry["query"] == WHOLE and activity_entry["endpoint"] == "agentactivity"
    assert repeated["query"] == {"offset": ["1", "2"]} and repeated["status"] == 401
    assert queues["query"] == {} and queues["endpoint"] == "queues"


def test_call_volume_rows_are_byte_identical_to_before_and_untouched_by_the_wfm_knobs():
    options = {"agents": 40, "agents_page_cap": 2, "activity_answer_cap": 3, "activity_order": "desc",
               "queue_description_key": "mixed"}
    body = {"toTimeStamp": "2023-06-03T00:00:00Z", "limit": 10_000}
    answers = []
    for extra in ({}, options):
        with make_simulator(**extra) as sim:
            get(sim, "agentactivity", WHOLE)
            sim.hold_back_activity(4)
            response = requests.post(sim.url + ACCOUNT.format(account=sim.account_id) + "callvolume",
                                     json={"orgId": sim.org_id, **body}, headers={"auth": sim.token()}, timeout=5)
            answers.append(response.content)
    assert hashlib.sha256(answers[0]).hexdigest() == CALLVOLUME_ANSWER_SHA256
    assert answers[1] == answers[0]


def test_cli_turns_the_wfm_options_into_behaviours():
    command = [
        sys.executable, "-m", "simulator", "--queues", "2", "--days", "2", "--agents", "7", "--agents-page-cap", "3",
        "--ignore-offset", "--activity-answer-cap", "4", "--queue-description-key", "Description",
    ]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True)
    try:
        config = json.loads(process.stdout.readline())["config"]
        token = jwt.encode({"appId": config["credentials"]["client_id"]},
                           config["credentials"]["client_secret"], algorithm="HS256")
        base = config["host"] + ACCOUNT.format(account=config["account_id"])

        def fetch(endpoint, params=None):
            return requests.get(base + endpoint, params=params, headers={"auth": token}, timeout=5).json()

        queues = fetch("queues")
        first, later = fetch("agents", {"offset": 0, "limit": 10}), fetch("agents", {"offset": 3, "limit": 10})
        events = fetch("agentactivity", {"fromTimeStamp": config["start_date"], "toTimeStamp": "2100-01-01T00:00:00Z"})
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert [list(queue)[2] for queue in queues] == ["Description", "Description"]
    assert len(first) == 3 and later == first
    assert len(events["AgentUpdates"]) == 4
