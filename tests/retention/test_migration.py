"""Migration 0011_retention on a database that already holds clear OTP codes (written before
codes were sealed): they are redacted, the messages stay readable, `posted_events` is filled
from the outbox, and the downgrade goes back cleanly."""

from __future__ import annotations

import json
import uuid

import psycopg

from ledger.migrate import downgrade, upgrade
from otp.delivery import CODE_SLOT

BODY = "Your code to send USD 12.34 to account {payee} is 246813. It expires in 5 minutes."


def _envelope(event_id: uuid.UUID, event_type: str, data: dict[str, object]) -> str:
    return json.dumps({"specversion": "1.0", "id": str(event_id), "type": event_type, "data": data})


def test_upgrade_redacts_clear_codes_and_records_posted_events(db_url: str) -> None:
    upgrade(db_url, "0009_outbox_cursor")
    payee, transfer_id, customer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    otp_event, posted_event = uuid.uuid4(), uuid.uuid4()
    body = BODY.format(payee=payee)
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox (id, topic, key, type, source, payload) VALUES "
            "(%s, 'ledgerflow.notifications', %s, 'notification.requested', 'test', %s), "
            "(%s, 'ledgerflow.transfers', %s, 'transfer.posted', 'test', %s)",
            (
                otp_event,
                str(transfer_id),
                _envelope(otp_event, "notification.requested", {"body": body, "customer_id": str(customer)}),
                posted_event,
                str(transfer_id),
                _envelope(posted_event, "transfer.posted", {"transfer_id": str(transfer_id)}),
            ),
        )
        conn.execute(
            "INSERT INTO notifications (id, customer_id, channel, subject, body, transfer_id) "
            "VALUES (%s, %s, 'in_app', 'Approve', %s, %s)",
            (otp_event, customer, body, transfer_id),
        )

    upgrade(db_url)

    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        row = conn.execute("SELECT body FROM notifications").fetchone()
        assert row is not None
        inbox = row[0]
        row = conn.execute("SELECT payload -> 'data' ->> 'body' FROM outbox WHERE id = %s", (otp_event,)).fetchone()
        assert row is not None
        outbox = row[0]
        for redacted in (inbox, outbox):
            assert "246813" not in redacted and f" is {CODE_SLOT}." in redacted
            assert "USD 12.34" in redacted and str(payee) in redacted, "the message stays readable"
        posted = conn.execute("SELECT event_id, transfer_id, type FROM posted_events").fetchall()
        assert posted == [(posted_event, transfer_id, "transfer.posted")]
        # A challenge that does not exist (or any not pending) reads as expired.
        row = conn.execute("SELECT otp_code_unusable(%s, now())", (str(transfer_id),)).fetchone()
        assert row == ("expired",)

    downgrade(db_url, "0009_outbox_cursor")
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('posted_events'), to_regclass('retention_runs')").fetchone() == (
            None,
            None,
        )
    upgrade(db_url)
