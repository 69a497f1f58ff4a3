"""The event contract (docs/events/*.schema.json) against what the relay really publishes: a
real life of accounts and transfers through the HTTP API (the real workflow, the real ledger),
its outbox published by the real relay to real Kafka, and every message read back from Kafka
and validated against the JSON Schema of its CloudEvents type.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from ledger.outbox import EVENT_TOPICS
from relay.publisher import OutboxRelay
from relay.topics import ensure_topics
from tests.api.conftest import Api, bearer, new_key
from tests.relay.helpers import FAST, Tail

EVENTS = Path(__file__).resolve().parents[2] / "docs" / "events"
# What this life produces; the remaining types (transfer.expired, transfer.failed,
# reconciliation.failed) share their schema's $defs and are checked for shape below.
PRODUCED = {
    "account.opened",
    "account.deposited",
    "account.status_changed",
    "transfer.initiated",
    "notification.requested",
    "transfer.posted",
    "transfer.cancelled",
    "transfer.rejected",
    "transfer.reversed",
}


def schema_for(event_type: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / f"{event_type}.schema.json").read_text()))


def test_every_event_type_has_a_schema_and_only_those() -> None:
    files = {p.name.removesuffix(".schema.json") for p in EVENTS.glob("*.schema.json")}
    assert files == set(EVENT_TOPICS), files ^ set(EVENT_TOPICS)
    for event_type, topic in EVENT_TOPICS.items():
        schema = schema_for(event_type)
        jsonschema_rs.validator_for(schema)  # a valid JSON Schema
        assert schema["x-topic"] == topic.value
        assert schema["properties"]["type"]["const"] == event_type
        for example in schema.get("examples", []):
            jsonschema_rs.validator_for(schema).validate(example)


def _transfer(
    api: Api, http: httpx.Client, token: str, source: str, destination: str, amount: int, currency: str
) -> str:
    body = {
        "source_account_id": source,
        "destination_account_id": destination,
        "amount_minor": amount,
        "currency": currency,
    }
    r = http.post("/v1/transfers", json=body, headers=bearer(token) | {"Idempotency-Key": new_key()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _otp(api: Api, http: httpx.Client, token: str, transfer_id: str) -> dict[str, Any]:
    r = http.post(f"/v1/transfers/{transfer_id}/otp", json={"code": api.otp_code(transfer_id)}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.timeout(600)
def test_what_the_relay_publishes_matches_the_event_schemas(api: Api, http: httpx.Client, kafka_bootstrap: str) -> None:
    ensure_topics(kafka_bootstrap)
    admin = api.admin_token(http)
    approver = api.staff(http, "approver")
    _, token = api.signup(http, "Eve Events")
    usd = api.open_account(http, token, "USD")
    usd2 = api.open_account(http, token, "USD")
    eur = api.open_account(http, token, "EUR")
    api.deposit(http, admin, usd, 5_000_000)

    # Posted, then reversed (maker-checker: the admin requests, an approver approves).
    posted = _transfer(api, http, token, usd["id"], usd2["id"], 12_345, "USD")
    assert _otp(api, http, token, posted)["status"] == "posted"
    reversal = http.post(
        f"/ops/v1/transfers/{posted}/reversals",
        json={"reason": "duplicate"},
        headers=bearer(admin) | {"Idempotency-Key": new_key()},
    )
    assert reversal.status_code == 201, reversal.text
    approved = http.post(
        f"/ops/v1/reversals/{reversal.json()['id']}/approve",
        json={},
        headers=bearer(approver) | {"Idempotency-Key": new_key()},
    )
    assert approved.status_code == 200, approved.text
    # Cross-currency, posted.
    fx = _transfer(api, http, token, usd["id"], eur["id"], 10_000, "USD")
    assert _otp(api, http, token, fx)["status"] == "posted"
    # Cancelled.
    cancelled = _transfer(api, http, token, usd["id"], usd2["id"], 500, "USD")
    assert http.post(f"/v1/transfers/{cancelled}/cancel", headers=bearer(token)).status_code == 200
    # Over the review threshold: reviewed and rejected.
    big = api.settings.review_threshold_minor["USD"]
    reviewed = _transfer(api, http, token, usd["id"], usd2["id"], big, "USD")
    assert _otp(api, http, token, reviewed)["status"] == "in_review"
    rejected = http.post(f"/ops/v1/transfers/{reviewed}/reject", json={"reason": "no"}, headers=bearer(approver))
    assert rejected.status_code == 200, rejected.text
    # An account frozen by an operator.
    current = http.get(f"/ops/v1/accounts/{eur['id']}", headers=bearer(admin))
    frozen = http.patch(
        f"/ops/v1/accounts/{eur['id']}",
        json={"status": "frozen"},
        headers=bearer(admin) | {"If-Match": current.headers["ETag"]},
    )
    assert frozen.status_code == 200, frozen.text

    keys = {usd["id"], usd2["id"], eur["id"], posted, fx, cancelled, reviewed}
    ids = [str(row[0]) for row in api.sql("SELECT id FROM outbox WHERE key = ANY(%s) ORDER BY seq", list(keys))]
    tail = Tail(kafka_bootstrap)
    relay = OutboxRelay(api.engine, kafka_bootstrap, FAST)
    try:
        relay.drain(timeout_s=60)
    finally:
        relay.close()
    received = tail.read(ids)
    assert sorted(m.id for m in received) == sorted(ids)

    if os.environ.get("LEDGERFLOW_DUMP_EVENTS"):
        Path(os.environ["LEDGERFLOW_DUMP_EVENTS"]).write_text(json.dumps([m.envelope for m in received], indent=1))
    seen: set[str] = set()
    errors: list[str] = []
    for message in received:
        event_type = message.envelope["type"]
        seen.add(event_type)
        assert message.topic == EVENT_TOPICS[event_type].value
        validator = jsonschema_rs.validator_for(schema_for(event_type))
        errors += [f"{event_type} {message.id}: {e}" for e in validator.iter_errors(message.envelope)]
    assert not errors, "\n".join(errors[:20])
    assert seen >= PRODUCED, PRODUCED - seen


def test_a_schema_refuses_an_envelope_that_breaks_it() -> None:
    """The schemas are not vacuous: a posted event without its legs, or with a float amount, fails."""
    validator = jsonschema_rs.validator_for(schema_for("transfer.posted"))
    good = schema_for("transfer.posted")["examples"][0]
    validator.validate(good)
    for broken in (
        {**good, "data": {k: v for k, v in good["data"].items() if k != "legs"}},
        {**good, "data": {**good["data"], "amount_minor": 12.5}},
        {**good, "specversion": "0.3"},
        {**good, "id": str(uuid.uuid4()) + "x"},
    ):
        assert not validator.is_valid(broken)
