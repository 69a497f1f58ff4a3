"""Outbox rows: CloudEvents 1.0 envelopes, deterministic ids, topics as in docs/api.md."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from ledger import outbox
from ledger.db import transaction
from ledger.ids import event_id, uuid7
from ledger.money import Money
from ledger.service import Ledger
from tests.ledger.conftest import funded

Raw = psycopg.Connection[Any]
ENVELOPE_KEYS = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}


def test_every_row_is_a_structured_cloudevent_on_the_right_topic(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(10, "USD"))
    ledger.transition_transfer(t.id, "processing")
    ledger.post_transfer(t.id)
    rows = raw.execute("SELECT id, topic, key, type, source, subject, payload FROM outbox ORDER BY seq").fetchall()
    assert {r[3] for r in rows} >= {"account.opened", "account.deposited", "transfer.initiated", "transfer.posted"}
    for eid, topic, key, type_, source_, subject, payload in rows:
        assert set(payload) == ENVELOPE_KEYS
        assert payload["specversion"] == "1.0" and payload["id"] == str(eid) and payload["type"] == type_
        assert payload["datacontenttype"] == "application/json" and payload["time"].endswith("Z")
        assert topic == outbox.EVENT_TOPICS[type_].value
        assert source_ == payload["source"] and subject == payload["subject"]
        if type_.startswith("transfer."):
            assert key == str(t.id) and eid == event_id(t.id, type_)
        else:
            assert key in (str(source.id), str(destination.id))


def test_insert_events_is_idempotent_by_event_id(ledger: Ledger, raw: Raw) -> None:
    business_id = uuid7()
    event = outbox.make_event(
        "notification.requested",
        business_id=business_id,
        key=business_id,
        data={"subject": "hi", "amount": Money(5, "USD").amount_minor},
    )
    with transaction(ledger.engine) as conn:
        assert outbox.insert_events(conn, [event, event]) == 1
    with transaction(ledger.engine) as conn:
        assert outbox.insert_event(conn, event) is False
    assert raw.execute("SELECT topic FROM outbox WHERE id = %s", (event.id,)).fetchall() == [
        ("ledgerflow.notifications",)
    ]
