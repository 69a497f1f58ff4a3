"""The Temporal payload codec: the API's endpoint takes a staff bearer token only; the ops
portal's same-origin /ops/temporal-codec (what the Web UI calls) takes the staff session cookie
and passes its token on. Both decode what the Temporal server really stores."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from config.settings import TEMPORAL_UI_CODEC_PATH
from portal.sessions import SessionStore
from portal.web import STAFF as STAFF_PORTAL
from security.codec import ENCODING, KEY_ID_METADATA
from security.sealed import load_sealer
from tests.api.conftest import bearer
from tests.security.conftest import ACTIVE_KEY_ID, SecApi
from tests.security.helpers import new_customer, start_transfer

DECODE = "/ops/v1/temporal-codec/decode"
ENCODE = "/ops/v1/temporal-codec/encode"
PORTAL_DECODE = TEMPORAL_UI_CODEC_PATH + "/decode"
EVIL = "http://127.0.0.1:6666"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body_of(*payloads: Payload) -> dict[str, object]:
    return {
        "payloads": [{"metadata": {k: b64(v) for k, v in p.metadata.items()}, "data": b64(p.data)} for p in payloads]
    }


def payloads_from(answer: httpx.Response) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in item["metadata"].items()},
            data=base64.b64decode(item.get("data", "")),
        )
        for item in answer.json()["payloads"]
    ]


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"amount_minor":738191}')


@pytest.fixture
def admin(sec: SecApi, http: httpx.Client) -> str:
    return sec.admin_token(http)


def test_round_trip_for_every_staff_role(sec: SecApi, http: httpx.Client, admin: str) -> None:
    for role in ("operator", "approver", "auditor", "admin"):
        token = admin if role == "admin" else sec.staff(http, role)
        encoded = http.post(ENCODE, json=body_of(PLAIN), headers=bearer(token))
        assert encoded.status_code == 200, encoded.text
        [sealed] = payloads_from(encoded)
        assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID_METADATA] == ACTIVE_KEY_ID.encode()
        assert b"738191" not in sealed.data
        decoded = http.post(DECODE, json=body_of(sealed, PLAIN), headers=bearer(token))
        assert decoded.status_code == 200, decoded.text
        assert payloads_from(decoded) == [PLAIN, PLAIN]  # the unencrypted one passes through
        assert decoded.headers["cache-control"] == "no-store"


def test_no_credentials_or_a_customer_token_get_401_and_are_audited(sec: SecApi, http: httpx.Client) -> None:
    customer = new_customer(sec, http)
    for headers in ({}, customer.auth, bearer("not-a-token")):
        for path in (DECODE, ENCODE):
            answer = http.post(path, json=body_of(PLAIN), headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "unauthorized"
    rows = sec.sql(
        "SELECT actor_realm, actor_id FROM audit_log WHERE action = 'access_denied' AND target_id = %s "
        "AND detail ->> 'reason' = 'wrong_realm'",
        f"POST {DECODE}",
    )
    assert ("customer", customer.id) in rows


def test_no_cross_origin_grant(http: httpx.Client, admin: str) -> None:
    # Nobody calls the codec cross-origin any more (the UI is served same-origin by the portal):
    # a page on another origin can neither preflight nor read an answer.
    preflight = http.options(DECODE, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    answer = http.post(DECODE, json=body_of(PLAIN), headers=bearer(admin) | {"Origin": EVIL})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


@pytest.fixture
def portal_sessions(sec: SecApi) -> Iterator[SessionStore]:
    state = sec.app.state
    store = getattr(state, "portal_sessions", None)
    if store is None:
        store = state.portal_sessions = SessionStore(sec.runtime.engine, load_sealer(sec.runtime.settings))
    yield store


def test_the_portal_codec_takes_a_staff_session_from_its_own_origin_only(
    sec: SecApi, http: httpx.Client, portal_sessions: SessionStore
) -> None:
    auditor = sec.staff(http, "auditor")
    session = portal_sessions.create("staff", auditor, 3600, email="auditor@ledgerflow.test", role="auditor")
    cookie = {"Cookie": f"{STAFF_PORTAL.cookie}={session.id}"}
    own = {"Origin": str(http.base_url).rstrip("/")}

    [sealed] = payloads_from(http.post(ENCODE, json=body_of(PLAIN), headers=bearer(auditor)))
    ok = http.post(PORTAL_DECODE, json=body_of(sealed), headers=cookie | own)
    assert ok.status_code == 200, ok.text
    assert payloads_from(ok) == [PLAIN]
    assert ok.headers["cache-control"] == "no-store"

    # A cookie is ambient: without our own Origin it could be a cross-site request.
    for origin in ({}, {"Origin": EVIL}):
        refused = http.post(PORTAL_DECODE, json=body_of(sealed), headers=cookie | origin)
        assert refused.status_code == 401 and "738191" not in refused.text

    # No session, or a customer's portal session: no decoding.
    customer = new_customer(sec, http)
    theirs = portal_sessions.create("customer", customer.token, 3600, email=customer.email)
    for jar in ({}, {"Cookie": f"{STAFF_PORTAL.cookie}={theirs.id}"}):
        refused = http.post(PORTAL_DECODE, json=body_of(sealed), headers=jar | own)
        assert refused.status_code == 401

    # Logging out at the API (the portal does it at logout) ends the cookie's access too.
    assert http.post("/ops/v1/auth/logout", headers=bearer(auditor)).status_code == 204
    gone = http.post(PORTAL_DECODE, json=body_of(sealed), headers=cookie | own)
    assert gone.status_code == 401


def test_bad_input_is_refused_without_details(http: httpx.Client, admin: str) -> None:
    [sealed] = payloads_from(http.post(ENCODE, json=body_of(PLAIN), headers=bearer(admin)))
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    unknown_key = Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: b"retired-0"}, data=sealed.data)
    for payload in (tampered, unknown_key):
        answer = http.post(DECODE, json=body_of(payload), headers=bearer(admin))
        assert answer.status_code == 422 and answer.json()["code"] == "undecodable_payload"
        assert "retired-0" not in answer.text and ACTIVE_KEY_ID not in answer.text
    not_base64 = http.post(DECODE, json={"payloads": [{"metadata": {"encoding": "%%%"}}]}, headers=bearer(admin))
    assert not_base64.status_code == 422 and not_base64.json()["code"] == "invalid_payload"


def test_body_limit_is_larger_here_than_elsewhere_but_still_bounded(http: httpx.Client, admin: str) -> None:
    big = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * 200_000)
    assert http.post(DECODE, json=body_of(big), headers=bearer(admin)).status_code == 200
    huge = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * 5_000_000)
    answer = http.post(DECODE, json=body_of(huge), headers=bearer(admin))
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"


async def test_decodes_what_the_temporal_server_stores(sec: SecApi, http: httpx.Client, admin: str) -> None:
    alice = new_customer(sec, http, funded_minor=10_000)
    bob = new_customer(sec, http)
    created = start_transfer(http, alice, bob, 4_321)
    assert created.status_code == 201, created.text
    raw = await Client.connect(sec.temporal_address, namespace=sec.settings.temporal_namespace)
    history = await raw.get_workflow_handle(created.json()["workflow_id"]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    stored = list(started.input.payloads)
    assert stored[0].metadata["encoding"] == ENCODING
    answer = http.post(DECODE, json=body_of(*stored), headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    request = json.loads(payloads_from(answer)[0].data)
    assert request["transfer_id"] == created.json()["id"]
    assert request["amount_minor"] == 4_321 and request["source_account_id"] == alice.account["id"]
