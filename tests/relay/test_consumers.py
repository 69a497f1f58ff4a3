"""The consumers: the notifier's in-app inbox and the activity feed, each effect once."""

from __future__ import annotations

import uuid
from datetime import datetime

from prometheus_client import REGISTRY
from sqlalchemy import Engine

from activities.transfer import TransferActivities, TransferPolicy
from contracts.transfer import InitiateInput, TransferRequest
from fx.rates import Rate
from ledger.account_numbers import grouped
from ledger.db import connection, transaction
from ledger.money import Money
from ledger.outbox import insert_events, make_event
from ledger.service import Ledger
from otp.delivery import CODE_SLOT, purpose_for
from relay.activity import format_amount
from relay.publisher import OutboxRelay
from security.keys import parse_keyring
from security.sealed import Sealer, is_sealed
from tests.relay.helpers import (
    FAST,
    Tail,
    Threads,
    consumed,
    posted_transfer,
    scalar,
    start_consumers,
    wait_until,
)


class _NoRates:
    """Same-currency transfers never ask for a rate."""

    def current(self, base: str, quote: str) -> Rate:
        raise AssertionError(f"no rate expected, asked for {base}/{quote}")


def test_notifier_delivers_the_otp_to_the_payer_only(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    payer, payee, bystander = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source = ledger.open_account(payer, "USD")
    destination = ledger.open_account(payee, "USD")
    ledger.open_account(bystander, "USD")
    ledger.deposit(uuid.uuid4(), source.id, Money(10_000, "USD"))
    transfer_id = uuid.uuid4()
    # The real OTP activity: it issues the challenge and writes notification.requested.
    sealer = Sealer(parse_keyring("relay-test:" + "77" * 32))
    activities = TransferActivities(
        ledger,
        _NoRates(),
        TransferPolicy(otp_key=b"k" * 32, review_threshold_minor={}, fx_quote_ttl_s=60),
        sealer,
    )
    activities.initiate_transfer(
        InitiateInput(
            request=TransferRequest(
                transfer_id=str(transfer_id),
                customer_id=str(payer),
                source_account_id=str(source.id),
                destination_account_id=str(destination.id),
                amount_minor=2_500,
                currency="USD",
            ),
            workflow_id=f"transfer-{transfer_id}",
        )
    )
    [otp_event] = [e for e in ledger.events_for(transfer_id) if e.type == "notification.requested"]

    start_consumers(threads, engine, relay_topics, tail)
    threads.start(OutboxRelay(engine, relay_topics, FAST).run, "relay")
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM notifications") == 1,
        timeout_s=30,
        what="the OTP notification in the inbox",
    )

    with connection(engine) as conn:
        rows = conn.execute(
            "SELECT id, customer_id, channel, subject, body, transfer_id, created_at FROM notifications"
        ).fetchall()
    [(notification_id, customer_id, channel, subject, body, about, created_at)] = rows
    assert customer_id == payer, "only the customer who must approve gets the code"
    assert notification_id == otp_event.id
    assert (channel, about) == ("in_app", transfer_id)
    assert subject == otp_event.payload["data"]["subject"]
    assert body == otp_event.payload["data"]["body"]
    payee_number = ledger.get_account(destination.id).account_number
    assert "25.00 USD" in body and grouped(payee_number) in body, "names the amount and the payee's number"
    # The code is sealed: not in the body (which holds the mask), in code_sealed, for this challenge.
    assert not any(w.isdigit() and len(w) == 6 for w in body.replace(".", " ").split()), "no clear code at rest"
    assert CODE_SLOT in body
    with connection(engine) as conn:
        [(ref, code_sealed)] = conn.execute("SELECT otp_challenge_ref, code_sealed FROM notifications").fetchall()
    assert ref == str(transfer_id) and code_sealed == otp_event.payload["data"]["otp"]["code_sealed"]
    assert is_sealed(code_sealed) and len(sealer.open_text(purpose_for(ref), code_sealed)) == 6
    assert created_at == datetime.fromisoformat(otp_event.payload["time"].replace("Z", "+00:00"))
    assert scalar(engine, "SELECT count(*) FROM processed_events WHERE consumer = 'notifier'") == 1
    wait_until(
        lambda: (
            REGISTRY.get_sample_value(
                "ledgerflow_consumer_lag", {"consumer": "notifier", "topic": "ledgerflow.notifications"}
            )
            == 0
        ),
        timeout_s=10,
        what="the notifier's lag gauge to read 0",
    )


def test_activity_feed_shows_each_customer_their_side(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    transfer = posted_transfer(ledger, amount_minor=1_234)
    start_consumers(threads, engine, relay_topics, tail)
    threads.start(OutboxRelay(engine, relay_topics, FAST).run, "relay")
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM activity_feed") == 6,
        timeout_s=30,
        what="six feed lines",
    )
    with connection(engine) as conn:
        feed = conn.execute(
            "SELECT customer_id, type, transfer_id, summary FROM activity_feed ORDER BY occurred_at, type"
        ).fetchall()
        counts = dict(conn.execute("SELECT type, count FROM event_counts WHERE consumer = 'activity'").fetchall())
    payer_lines = [(t, s) for c, t, _tid, s in feed if c == transfer.payer]
    payee_lines = [(t, s) for c, t, _tid, s in feed if c == transfer.payee]
    assert [t for t, _ in payer_lines] == [
        "account.opened",
        "account.deposited",
        "transfer.initiated",
        "transfer.posted",
    ]
    assert [t for t, _ in payee_lines] == ["account.opened", "transfer.posted"]
    assert payer_lines[-1][1].startswith("Transfer completed: 12.34 USD to account")
    assert payee_lines[-1][1].startswith("Money received: 12.34 USD from account")
    assert {tid for _c, t, tid, _s in feed if t.startswith("transfer.")} == {transfer.id}
    assert counts == {"account.opened": 2, "account.deposited": 1, "transfer.initiated": 1, "transfer.posted": 1}


def test_malformed_events_are_skipped_and_later_ones_applied(
    engine: Engine, ledger: Ledger, tail: Tail, relay_topics: str, threads: Threads
) -> None:
    customer = uuid.uuid4()
    broken = make_event(
        "notification.requested",
        business_id=uuid.uuid4(),
        key=customer,
        data={"channel": "in_app", "subject": "no customer id", "body": "?"},
    )
    fine = make_event(
        "notification.requested",
        business_id=uuid.uuid4(),
        key=customer,
        data={"customer_id": str(customer), "channel": "sms", "subject": "Hello", "body": "Welcome"},
    )
    with transaction(engine) as conn:
        insert_events(conn, [broken, fine])
    malformed_before = consumed("notifier", "malformed")
    start_consumers(threads, engine, relay_topics, tail)
    threads.start(OutboxRelay(engine, relay_topics, FAST).run, "relay")
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM notifications") == 1, timeout_s=30, what="the good notification"
    )
    # No SMS adapter is configured: the message still reaches the customer, in the inbox.
    assert scalar(engine, "SELECT channel FROM notifications WHERE customer_id = %s", customer) == "in_app"
    wait_until(
        lambda: consumed("notifier", "malformed") == malformed_before + 1,
        timeout_s=5,
        what="the malformed event to be counted",
    )
    assert scalar(engine, "SELECT count(*) FROM processed_events") == 1, "the broken event left no dedup row"


def test_format_amount_uses_the_currency_exponent() -> None:
    assert format_amount(1234, "USD") == "12.34 USD"
    assert format_amount(1234, "JPY") == "1234 JPY"
    assert format_amount(1234, "BHD") == "1.234 BHD"
    assert format_amount(None, "USD") == "None USD (minor units)"
