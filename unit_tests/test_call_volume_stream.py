"""Pins what the call_volume stream sends and how it pages, windows and checkpoints, with the CDK's HttpMocker.

- auth: the `auth` header carries a fresh HS256 token per request (appId kept a string, iat, exp at most an
  hour on, a jti never reused), or a pasted JWT as is;
- pagination: skip grows by the rows received, follows hasMore over short pages, stops on hasMore=false;
- windows: consecutive request bodies share their edge, the first starts at start_date, the last ends at end_date;
- state: the cursor is the last interval received, never the window end.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping, Optional

import jwt
import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.test.state_builder import StateBuilder

from source_callvolume.source import SourceCallvolume

STREAM = "call_volume"
ACCOUNT_ID = "acc-0001"
ORG_ID = "o-01aedac2-26fb-5bdb-bb0f-f71292ca0001"
CLIENT_ID = "0123"  # looks numeric: must still be sent as the string "0123"
CLIENT_SECRET = "a-client-secret-that-is-long-enough-for-hs256"
URL = f"https://platform.kore.ai/agentassist/api/public/analytics/account/{ACCOUNT_ID}/callvolume"
START = "2024-03-01T00:00:00Z"
END = "2024-03-02T00:00:00Z"
PAGE_SIZE = 3


def _config(**overrides: Any) -> dict:
    config = {
        "host": "platform.kore.ai",
        "account_id": ACCOUNT_ID,
        "org_id": ORG_ID,
        "credentials": {"auth_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        "start_date": START,
        "end_date": END,
        "page_size": PAGE_SIZE,
        "num_workers": 1,
    }
    config.update(overrides)
    return config


def _catalog(sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(STREAM, sync_mode).build()


def _record(index: int, end: str = "2024-03-01T10:00:00.000Z") -> dict:
    return {
        "_id": f"{index:024x}",
        "intervalStartTimeStamp": end.replace("10:00", "09:45"),
        "intervalEndTimeStamp": end,
        "queueId": "qu-1",
        "offeredContacts": index,
    }


def _page(records: List[dict], has_more: bool, total: Optional[int] = None) -> HttpResponse:
    body = {"hasMore": has_more, "CallVolumeUpdate": records, "totalCount": len(records) if total is None else total}
    return HttpResponse(body=json.dumps(body), status_code=200)


def _body(skip: int = 0, start: str = START, end: str = END, limit: int = PAGE_SIZE) -> dict:
    return {"orgId": ORG_ID, "fromTimeStamp": start, "toTimeStamp": end, "limit": limit, "skip": skip}


def _request(**body: Any) -> HttpRequest:
    return HttpRequest(url=URL, body=_body(**body))


def _read(config: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog, state: Any = None) -> EntrypointOutput:
    return read(SourceCallvolume(catalog, config, state), config, catalog, state)


def _sent(http_mocker: HttpMocker) -> Iterable[Any]:
    # HttpMocker exposes no request history of its own; its requests-mock keeps the requests as sent.
    return http_mocker._mocker.request_history


def _ids(output: EntrypointOutput) -> List[str]:
    return [record.record.data["_id"] for record in output.records]


def test_each_request_and_each_page_carries_a_freshly_signed_token(http_mocker: HttpMocker) -> None:
    http_mocker.post(_request(skip=0), _page([_record(1), _record(2), _record(3)], has_more=True, total=4))
    http_mocker.post(_request(skip=3), _page([_record(4)], has_more=False, total=4))

    output = _read(_config(), _catalog())

    assert len(output.records) == 4
    tokens = [request.headers["auth"] for request in _sent(http_mocker)]
    assert len(tokens) == 2 and not any(token.startswith("Bearer") for token in tokens)
    claims = [jwt.decode(token, CLIENT_SECRET, algorithms=["HS256"]) for token in tokens]
    assert all(claim["appId"] == CLIENT_ID and isinstance(claim["appId"], str) for claim in claims)
    assert all(0 < claim["exp"] - claim["iat"] <= 3600 for claim in claims)
    assert len({claim["jti"] for claim in claims}) == 2


def test_pasted_jwt_is_sent_unchanged_in_the_auth_header(http_mocker: HttpMocker) -> None:
    pasted = jwt.encode({"appId": "cs-1"}, CLIENT_SECRET, algorithm="HS256")
    http_mocker.post(_request(skip=0), _page([_record(1)], has_more=False))

    _read(_config(credentials={"auth_type": "jwt", "jwt": pasted}), _catalog())

    assert [request.headers["auth"] for request in _sent(http_mocker)] == [pasted]


def test_pagination_continues_on_short_page_while_has_more(http_mocker: HttpMocker) -> None:
    # The server caps pages at 2 rows although 3 were asked for: skip must follow the rows received.
    http_mocker.post(_request(skip=0), _page([_record(1), _record(2)], has_more=True, total=5))
    http_mocker.post(_request(skip=2), _page([_record(3), _record(4)], has_more=True, total=5))
    http_mocker.post(_request(skip=4), _page([_record(5)], has_more=False, total=5))

    output = _read(_config(), _catalog())

    assert _ids(output) == [_record(index)["_id"] for index in range(1, 6)]


def test_pagination_stops_on_has_more_false_without_an_extra_request(http_mocker: HttpMocker) -> None:
    # A full page with hasMore=false is the last one: no request for skip=3 is mocked, so one would fail the test.
    http_mocker.post(_request(skip=0), _page([_record(1), _record(2), _record(3)], has_more=False))

    output = _read(_config(), _catalog())

    assert len(output.records) == 3
    assert len(list(_sent(http_mocker))) == 1


def test_window_is_read_again_when_total_count_changes_between_pages(http_mocker: HttpMocker) -> None:
    # Regression: a row removed before the offset between two pages shifted every later row up one place,
    # and plain offsets skipped the row at the page boundary. A changed totalCount re-reads the window.
    first, second, third = _record(1), _record(2), _record(3)
    http_mocker.post(
        _request(skip=0),
        [_page([_record(0), first, second], has_more=True, total=4), _page([first, second, third], has_more=False, total=3)],
    )
    http_mocker.post(_request(skip=3), _page([third], has_more=False, total=3))

    output = _read(_config(), _catalog())

    assert set(_ids(output)) == {_record(index)["_id"] for index in range(4)}


def test_windows_share_their_edges_from_start_date_to_end_date(http_mocker: HttpMocker) -> None:
    edges = ["2024-03-01T00:00:00Z", "2024-03-01T08:00:00Z", "2024-03-01T16:00:00Z", "2024-03-02T00:00:00Z"]
    for window_start, window_end in zip(edges, edges[1:]):
        http_mocker.post(_request(start=window_start, end=window_end), _page([], has_more=False))

    output = _read(_config(window_hours=8), _catalog())

    assert not output.errors
    bodies = sorted((json.loads(request.body) for request in _sent(http_mocker)), key=lambda body: body["fromTimeStamp"])
    assert [(body["fromTimeStamp"], body["toTimeStamp"]) for body in bodies] == list(zip(edges, edges[1:]))


def test_state_is_the_last_interval_received_not_the_window_end(http_mocker: HttpMocker) -> None:
    http_mocker.post(
        _request(skip=0),
        _page([_record(1, end="2024-03-01T10:00:00.000Z"), _record(2, end="2024-03-01T10:15:00.000Z")], has_more=False),
    )

    output = _read(_config(), _catalog(SyncMode.incremental))

    assert output.most_recent_state.stream_state.intervalEndTimeStamp == "2024-03-01T10:15:00Z"


def test_incremental_sync_starts_a_lookback_before_the_state(http_mocker: HttpMocker) -> None:
    state = StateBuilder().with_stream_state(STREAM, {"intervalEndTimeStamp": "2024-03-01T12:00:00Z"}).build()
    http_mocker.post(_request(start="2024-03-01T09:00:00Z"), _page([_record(7, end="2024-03-01T11:00:00.000Z")], has_more=False))

    output = _read(_config(lookback_minutes=180), _catalog(SyncMode.incremental), state)

    assert _ids(output) == [_record(7)["_id"]]
    # The re-read interval is older than the state: the state must not move back.
    assert output.most_recent_state.stream_state.intervalEndTimeStamp == "2024-03-01T12:00:00Z"


@pytest.mark.parametrize("host", ["platform.kore.ai", "https://platform.kore.ai", "https://platform.kore.ai/", " platform.kore.ai "])
def test_host_is_accepted_with_or_without_scheme_and_trailing_slash(http_mocker: HttpMocker, host: str) -> None:
    http_mocker.post(_request(skip=0), _page([_record(1)], has_more=False))

    output = _read(_config(host=host), _catalog())

    assert _ids(output) == [_record(1)["_id"]]


def test_fields_the_api_adds_later_pass_through_and_null_counts_arrive_as_absent(http_mocker: HttpMocker) -> None:
    record = {**_record(1), "csatScore": None, "newMetricFromKore": 5}
    http_mocker.post(_request(skip=0), _page([record], has_more=False))

    output = _read(_config(), _catalog())

    # The CDK's serializer leaves out null values; destinations store the missing field as null.
    assert [message.record.data for message in output.records] == [{**_record(1), "newMetricFromKore": 5}]
