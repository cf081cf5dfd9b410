"""Pins spec, check and discover of the installed command: what a user setting the connector up sees.

Each failing `check` must answer FAILED (exit 0, no traceback) with a message that names the cause and the
config field to fix.
"""

from __future__ import annotations

import socket
import time

import jwt
import pytest

from integration_tests.conftest import Connector
from simulator import Simulator
from source_callvolume.source import connection_specification
from testkit import STREAM

WRONG_SECRET = "not-the-secret-of-this-app-but-long-enough"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_spec_declares_the_contracted_fields_and_secrets(connector: Connector) -> None:
    run = connector.run("spec")

    (spec,) = run.of_type("SPEC")
    properties = spec["spec"]["connectionSpecification"]["properties"]
    assert spec["spec"]["connectionSpecification"]["required"] == ["host", "account_id", "org_id", "credentials"]
    assert properties["host"]["default"] == "https://platform.kore.ai"
    client_credentials, pasted = properties["credentials"]["oneOf"]
    assert client_credentials["properties"]["client_secret"]["airbyte_secret"] is True
    assert pasted["properties"]["jwt"]["airbyte_secret"] is True
    for name, field in properties.items():
        assert {"title", "description", "order"} <= field.keys(), name


def test_spec_prints_the_spec_exactly_as_the_manifest_says_it(connector: Connector) -> None:
    # Regression: the output masking reached the SPEC message and printed the JWT field's example as ****.
    (spec,) = connector.run("spec").of_type("SPEC")

    assert spec["spec"]["connectionSpecification"] == connection_specification()


def test_every_request_carries_a_fresh_token_in_the_auth_header_with_app_id_kept_a_string(connector: Connector) -> None:
    with Simulator(queues=2, days=2, page_cap=50, client_id="0123") as sim:
        run = connector.read(sim.config(), sync_mode="full_refresh")
        sent = [request["auth"] for request in sim.requests]

    assert run.returncode == 0 and len(sent) > 3
    claims = [jwt.decode(token, sim.config()["credentials"]["client_secret"], algorithms=["HS256"]) for token in sent]
    assert all(claim["appId"] == "0123" for claim in claims)
    assert all(0 < claim["exp"] - claim["iat"] <= 3600 for claim in claims)
    assert len({claim["jti"] for claim in claims}) == len(sent)


def test_a_pasted_jwt_is_sent_unchanged_in_the_auth_header(connector: Connector, simulator: Simulator) -> None:
    pasted = simulator.token()

    connector.read(simulator.config(credentials={"auth_type": "jwt", "jwt": pasted}), sync_mode="full_refresh")

    assert {request["auth"] for request in simulator.requests} == {pasted}


def test_check_succeeds_with_client_credentials(connector: Connector, simulator: Simulator) -> None:
    run = connector.run("check", simulator.config())

    assert run.returncode == 0
    assert run.connection_status == {"status": "SUCCEEDED"}


def test_check_succeeds_with_a_pasted_jwt(connector: Connector, simulator: Simulator) -> None:
    config = simulator.config(credentials={"auth_type": "jwt", "jwt": simulator.token()})

    assert connector.run("check", config).connection_status == {"status": "SUCCEEDED"}


def _failed_check(connector: Connector, config: dict) -> str:
    run = connector.run("check", config)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.connection_status["status"] == "FAILED"
    assert "Traceback" not in run.connection_status["message"]
    return run.connection_status["message"]


def test_check_names_the_client_secret_when_kore_answers_401(connector: Connector, simulator: Simulator) -> None:
    credentials = {"auth_type": "client_credentials", "client_id": simulator.client_id, "client_secret": WRONG_SECRET}

    message = _failed_check(connector, simulator.config(credentials=credentials))

    assert "401" in message and "`credentials.client_secret`" in message


def test_check_names_the_pasted_jwt_when_it_has_expired(connector: Connector, simulator: Simulator) -> None:
    now = int(time.time())
    expired = simulator.token(iat=now - 7200, exp=now - 3600)

    message = _failed_check(connector, simulator.config(credentials={"auth_type": "jwt", "jwt": expired}))

    assert "401" in message and "`credentials.jwt`" in message and "expired" in message


def test_check_names_the_missing_scope_when_kore_answers_403(connector: Connector) -> None:
    with Simulator(queues=1, days=1, scope_granted=False) as sim:
        message = _failed_check(connector, sim.config())

    assert "403" in message and "WFM Integration" in message


def test_check_names_the_account_id_when_kore_answers_404(connector: Connector, simulator: Simulator) -> None:
    message = _failed_check(connector, simulator.config(account_id="acc-someone-else"))

    assert "404" in message and "`account_id`" in message


def test_check_names_the_org_id_when_kore_answers_400(connector: Connector, simulator: Simulator) -> None:
    message = _failed_check(connector, simulator.config(org_id="o-not-this-org"))

    assert "400" in message and "`org_id`" in message


@pytest.mark.parametrize(
    "host, cause",
    [
        ("https://no-such-host.invalid", "could not be resolved"),
        (f"http://127.0.0.1:{_closed_port()}", "Could not connect"),
    ],
    ids=["dns", "refused"],
)
def test_check_names_the_host_when_it_cannot_be_reached(connector: Connector, simulator: Simulator, host: str, cause: str) -> None:
    message = _failed_check(connector, simulator.config(host=host))

    assert cause in message and "`host`" in message


def test_check_names_the_host_when_tls_fails(connector: Connector, simulator: Simulator) -> None:
    # The simulator speaks plain HTTP, so a TLS handshake with it fails as a wrong certificate would.
    message = _failed_check(connector, simulator.config(host=simulator.url.replace("http://", "https://")))

    assert "TLS" in message and "`host`" in message


def test_check_refuses_plain_http_to_a_remote_host_before_any_request(connector: Connector, simulator: Simulator) -> None:
    message = _failed_check(connector, simulator.config(host="http://platform.kore.ai"))

    assert "`host`" in message and "https://" in message
    assert simulator.requests == []


def test_discover_declares_the_four_wfm_streams_with_their_keys_and_cursors(connector: Connector, simulator: Simulator) -> None:
    run = connector.run("discover", simulator.config())

    (catalog,) = run.of_type("CATALOG")
    streams = {stream["name"]: stream for stream in catalog["catalog"]["streams"]}
    assert set(streams) == {"call_volume", "queues", "agents", "agent_activity"}
    keys = {name: (stream["source_defined_primary_key"], stream.get("default_cursor_field"), set(stream["supported_sync_modes"])) for name, stream in streams.items()}
    assert keys == {
        "call_volume": ([["_id"]], ["intervalEndTimeStamp"], {"full_refresh", "incremental"}),
        "queues": ([["collectionPointId"]], None, {"full_refresh"}),
        "agents": ([["agentId"]], None, {"full_refresh"}),
        "agent_activity": ([["AgentId"], ["EventTime"], ["Activity"], ["ReasonCode"]], ["EventTimeUtc"], {"full_refresh", "incremental"}),
    }
    schema = streams[STREAM]["json_schema"]["properties"]
    assert schema["offeredContacts"]["type"] == ["integer", "null"]
    assert "milliseconds" in schema["conversationHandleTime"]["description"]
    assert "UTC" in streams["agent_activity"]["json_schema"]["properties"]["EventTimeUtc"]["description"]
