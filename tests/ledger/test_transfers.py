"""Transfers: created with their hold, posted once (one transfer.posted row), voided, reversed."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ledger.errors import (
    AccountFrozen,
    AccountNotFound,
    CurrencyMismatch,
    DuplicatePosting,
    FxQuoteRequired,
    IllegalTransition,
    InsufficientFunds,
    SameAccount,
    TransferNotFound,
    VersionConflict,
)
from ledger.fx import FxQuote
from ledger.holds import HoldState
from ledger.ids import event_id, house_account_id, uuid7
from ledger.money import Money
from ledger.service import Ledger
from ledger.transfers import TransferStatus
from tests.ledger.conftest import count_rows, funded

Raw = psycopg.Connection[Any]


def posted_rows(raw: Raw, transfer_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return raw.execute(
        "SELECT id, payload FROM outbox WHERE key = %s AND type = 'transfer.posted'", (str(transfer_id),)
    ).fetchall()


def test_lifecycle_hold_then_post(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 10_000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    transfer_id = uuid7()
    t = ledger.create_transfer_with_hold(
        transfer_id, customer, source.id, destination.id, Money(2500, "USD"), description="rent"
    )
    assert t.status is TransferStatus.PENDING_OTP and t.workflow_id == f"transfer-{transfer_id}"
    b = ledger.balance(source.id)
    assert (b.ledger_minor, b.held_minor, b.available_minor) == (10_000, 2500, 7500)
    assert ledger.get_hold(t.hold_id).state is HoldState.PENDING  # type: ignore[arg-type]

    t = ledger.transition_transfer(transfer_id, "processing", expected_version=t.version)
    posting = ledger.post_transfer(transfer_id)
    assert not posting.replayed and posting.transfer.status is TransferStatus.POSTED
    assert posting.transfer.transaction_id == posting.transaction_id
    b = ledger.balance(source.id)
    assert (b.ledger_minor, b.held_minor, b.available_minor) == (7500, 0, 7500)
    assert ledger.balance(destination.id).ledger_minor == 2500
    assert ledger.get_hold(t.hold_id).state is HoldState.POSTED  # type: ignore[arg-type]
    assert [(leg.account_id, leg.direction.value, leg.amount_minor) for leg in ledger.transfer_legs(transfer_id)] == [
        (source.id, "debit", 2500),
        (destination.id, "credit", 2500),
    ]
    types = [e.type for e in ledger.events_for(transfer_id)]
    assert types == ["transfer.initiated", "transfer.posted"]
    (row,) = posted_rows(raw, transfer_id)
    assert row[0] == event_id(transfer_id, "transfer.posted")
    data = row[1]["data"]
    assert data["transaction_id"] == str(posting.transaction_id) and data["status"] == "posted"
    assert data["legs"] == [
        {"account_id": str(source.id), "direction": "debit", "amount_minor": 2500, "currency": "USD"},
        {"account_id": str(destination.id), "direction": "credit", "amount_minor": 2500, "currency": "USD"},
    ]


def test_one_transfer_id_posts_once_whatever_the_retries(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    transfer_id = uuid7()
    ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(300, "USD"))
    ledger.transition_transfer(transfer_id, "processing")
    results: list[Any] = []
    start = threading.Barrier(12)

    def post() -> None:
        start.wait()
        results.append(ledger.post_transfer(transfer_id))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.transaction_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    before = count_rows(raw)
    replay = ledger.post_transfer(transfer_id)
    assert replay.replayed and replay.transaction_id == results[0].transaction_id
    assert replay.posted_at == results[0].posted_at
    assert count_rows(raw) == before  # the replay wrote nothing
    assert len(posted_rows(raw, transfer_id)) == 1
    assert raw.execute(
        "SELECT count(*) FROM ledger_transactions WHERE transfer_id = %s", (transfer_id,)
    ).fetchone() == (1,)
    assert ledger.balance(destination.id).ledger_minor == 300


def test_the_posted_event_commits_or_rolls_back_with_the_legs(ledger: Ledger, raw: Raw, migrated_db_url: str) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    transfer_id = uuid7()
    ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(100, "USD"))
    ledger.transition_transfer(transfer_id, "processing")
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as conn:  # an explicit transaction
        conn.execute(
            "SELECT * FROM ledger_post_transfer(%s, %s, %s, 'transfer', NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL)",
            (transfer_id, uuid7(), event_id(transfer_id, "transfer.posted")),
        )
        inside = conn.execute(
            "SELECT count(*) FROM outbox WHERE key = %s AND type = 'transfer.posted'", (str(transfer_id),)
        ).fetchone()
        assert inside == (1,)  # written by the same transaction as the legs...
        assert posted_rows(raw, transfer_id) == []  # ...and invisible until it commits
        conn.rollback()
    assert posted_rows(raw, transfer_id) == []  # rolled back: no event, no legs, still processing
    assert ledger.transfer_legs(transfer_id) == []
    assert ledger.get_transfer(transfer_id).status is TransferStatus.PROCESSING
    ledger.post_transfer(transfer_id)
    assert len(posted_rows(raw, transfer_id)) == 1


def test_creation_refusals(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    eur = ledger.open_account(uuid.uuid4(), "EUR")
    create = ledger.create_transfer_with_hold
    with pytest.raises(SameAccount):
        create(uuid7(), customer, source.id, source.id, Money(1, "USD"))
    with pytest.raises(AccountNotFound):  # not the customer's account: 404, never 403
        create(uuid7(), uuid.uuid4(), source.id, destination.id, Money(1, "USD"))
    with pytest.raises(AccountNotFound):
        create(uuid7(), customer, source.id, uuid7(), Money(1, "USD"))
    with pytest.raises(CurrencyMismatch):
        create(uuid7(), customer, source.id, destination.id, Money(1, "GBP"))
    with pytest.raises(InsufficientFunds) as err:
        create(uuid7(), customer, source.id, destination.id, Money(1001, "USD"))
    assert err.value.code == "insufficient_funds"
    with pytest.raises(FxQuoteRequired):  # destination-fixed FX needs a quote to know what to hold
        create(uuid7(), customer, source.id, eur.id, Money(100, "EUR"))
    ledger.set_account_status(destination.id, "frozen", destination.version)
    with pytest.raises(AccountFrozen):
        create(uuid7(), customer, source.id, destination.id, Money(1, "USD"))
    assert ledger.balance(source.id).held_minor == 0  # nothing was held by any refusal


def test_creation_is_idempotent_by_transfer_id(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    transfer_id = uuid7()
    first = ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(100, "USD"))
    before = count_rows(raw)
    again = ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(100, "USD"))
    assert again == first and count_rows(raw) == before
    assert ledger.balance(source.id).held_minor == 100
    with pytest.raises(DuplicatePosting):
        ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(101, "USD"))


def test_status_transitions_are_compare_and_set(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(100, "USD"))
    with pytest.raises(VersionConflict):
        ledger.transition_transfer(t.id, "in_review", expected_version=t.version + 5)
    with pytest.raises(IllegalTransition):  # posted only through post_transfer
        ledger.transition_transfer(t.id, "posted")
    with pytest.raises(IllegalTransition):  # not processing yet
        ledger.post_transfer(t.id)
    reviewed = ledger.transition_transfer(t.id, "in_review", expected_version=t.version)
    assert reviewed.version == t.version + 1
    assert ledger.transition_transfer(t.id, "in_review") == reviewed  # a retried activity: no-op
    with pytest.raises(IllegalTransition):
        ledger.void_transfer_hold(t.id, "posted")
    with pytest.raises(TransferNotFound):
        ledger.transition_transfer(uuid7(), "processing")


def test_void_releases_the_hold_once_and_refuses_after_posting(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(400, "USD"))
    cancelled = ledger.void_transfer_hold(t.id, "cancelled", "cancelled_by_customer")
    assert cancelled.status is TransferStatus.CANCELLED and cancelled.failure_reason == "cancelled_by_customer"
    assert ledger.balance(source.id).held_minor == 0
    assert ledger.get_hold(t.hold_id).state is HoldState.VOIDED  # type: ignore[arg-type]
    before = count_rows(raw)
    assert ledger.void_transfer_hold(t.id, "cancelled", "cancelled_by_customer") == cancelled
    assert count_rows(raw) == before
    with pytest.raises(IllegalTransition):
        ledger.void_transfer_hold(t.id, "expired")
    with pytest.raises(IllegalTransition):
        ledger.post_transfer(t.id)
    assert [e.type for e in ledger.events_for(t.id)] == ["transfer.initiated", "transfer.cancelled"]

    expired = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(100, "USD"))
    ledger.void_transfer_hold(expired.id, "expired", "otp_expired")
    assert ledger.get_hold(expired.hold_id).state is HoldState.EXPIRED  # type: ignore[arg-type]

    posted = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(100, "USD"))
    ledger.transition_transfer(posted.id, "processing")
    ledger.post_transfer(posted.id)
    with pytest.raises(IllegalTransition):
        ledger.void_transfer_hold(posted.id, "failed", "too late")
    assert ledger.projection_mismatches() == []


def test_fx_posting_balances_per_currency_and_rounds_for_the_house(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 100_000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "EUR")
    quote = FxQuote("q-1", "USD", "EUR", Decimal("0.9182"), 25)
    # source fixed: 10.00 USD leaves, hold of 10.00 USD, no quote needed until posting
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(1000, "USD"))
    ledger.transition_transfer(t.id, "processing")
    with pytest.raises(FxQuoteRequired):
        ledger.post_transfer(t.id)
    posting = ledger.post_transfer(t.id, quote)
    assert (posting.transfer.source_amount_minor, posting.transfer.destination_amount_minor) == (1000, 915)
    assert posting.transfer.fx_rate == Decimal("0.9182") and posting.transfer.fx_spread_minor == 3
    legs = ledger.transfer_legs(t.id)
    assert len(legs) == 6
    net: dict[str, int] = {}
    for leg in legs:
        net[leg.currency] = net.get(leg.currency, 0) + (
            leg.amount_minor if leg.direction == "credit" else -leg.amount_minor
        )
    assert net == {"USD": 0, "EUR": 0}
    assert ledger.balance(destination.id).ledger_minor == 915  # floor(997 * 0.9182) = 915 (915.45 exact)
    assert ledger.balance(house_account_id("fx_revenue", "USD")).ledger_minor == 3  # ceil(2.5)
    assert ledger.balance(house_account_id("fx_liquidity", "USD")).ledger_minor == 997
    assert ledger.balance(house_account_id("fx_liquidity", "EUR")).ledger_minor == -915
    (row,) = posted_rows(raw, t.id)
    assert row[1]["data"]["fx"]["rate"] == "0.9182"  # a decimal string, never a float

    # destination fixed: an indicative quote sizes the hold, the firm one posts
    t2 = ledger.create_transfer_with_hold(
        uuid7(),
        customer,
        source.id,
        destination.id,
        Money(10_000, "EUR"),
        fx=FxQuote("indicative", "USD", "EUR", Decimal("0.9182"), 25),
    )
    assert t2.source_amount_minor == 10_919 and ledger.balance(source.id).held_minor == 10_919
    ledger.transition_transfer(t2.id, "processing")
    firm = ledger.post_transfer(t2.id, FxQuote("q-2", "USD", "EUR", Decimal("0.9000"), 25))
    assert firm.transfer.destination_amount_minor == 10_000
    assert firm.transfer.source_amount_minor == 11_140  # ceil(10000/0.9)=11112 -> ceil(11112*10000/9975)
    b = ledger.balance(source.id)
    assert (b.ledger_minor, b.held_minor) == (100_000 - 1000 - 11_140, 0)
    assert ledger.balance(destination.id).ledger_minor == 10_915
    assert all(line.balanced for line in ledger.trial_balance())
    assert ledger.projection_mismatches() == []


def test_fx_posting_above_the_hold_needs_the_difference_available(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 10_919, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "EUR")
    t = ledger.create_transfer_with_hold(
        uuid7(),
        customer,
        source.id,
        destination.id,
        Money(10_000, "EUR"),
        fx=FxQuote("indicative", "USD", "EUR", Decimal("0.9182"), 25),
    )
    ledger.transition_transfer(t.id, "processing")
    with pytest.raises(InsufficientFunds):  # the firm rate is worse: 11,140 needed, 10,919 there
        ledger.post_transfer(t.id, FxQuote("q", "USD", "EUR", Decimal("0.9000"), 25))
    assert ledger.get_transfer(t.id).status is TransferStatus.PROCESSING  # nothing moved
    assert ledger.balance(source.id).held_minor == 10_919
    failed = ledger.void_transfer_hold(t.id, "failed", "insufficient_funds")
    assert failed.status is TransferStatus.FAILED and ledger.balance(source.id).held_minor == 0


def test_reversal_posts_compensating_legs_once(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(600, "USD"))
    with pytest.raises(IllegalTransition):
        ledger.reverse_transfer(uuid7(), t.id, "not posted yet")
    ledger.transition_transfer(t.id, "processing")
    posted = ledger.post_transfer(t.id)
    reversal_id = uuid7()
    r = ledger.reverse_transfer(reversal_id, t.id, "customer complaint")
    assert r.transfer.status is TransferStatus.REVERSED and r.transaction_id != posted.transaction_id
    assert ledger.balance(source.id).ledger_minor == 1000 and ledger.balance(destination.id).ledger_minor == 0
    before = count_rows(raw)
    again = ledger.reverse_transfer(reversal_id, t.id, "customer complaint")
    assert again.replayed and again.transaction_id == r.transaction_id and count_rows(raw) == before
    with pytest.raises(IllegalTransition):
        ledger.reverse_transfer(uuid7(), t.id, "twice")
    assert [e.type for e in ledger.events_for(t.id)] == ["transfer.initiated", "transfer.posted", "transfer.reversed"]


def test_reversal_cannot_overdraw_the_payee(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    payee_customer = uuid.uuid4()
    destination = ledger.open_account(payee_customer, "USD")
    elsewhere = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(600, "USD"))
    ledger.transition_transfer(t.id, "processing")
    ledger.post_transfer(t.id)
    spent = ledger.create_transfer_with_hold(uuid7(), payee_customer, destination.id, elsewhere.id, Money(500, "USD"))
    ledger.transition_transfer(spent.id, "processing")
    ledger.post_transfer(spent.id)
    with pytest.raises(InsufficientFunds):
        ledger.reverse_transfer(uuid7(), t.id, "too late")
    assert ledger.get_transfer(t.id).status is TransferStatus.POSTED


def test_listing_is_newest_first_with_a_cursor(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    ids = [
        ledger.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(10, "USD")).id
        for _ in range(5)
    ]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = ledger.list_transfers(customer_id=customer, limit=2, cursor=cursor)
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert ledger.list_transfers(customer_id=uuid.uuid4()).items == []
    assert len(ledger.list_transfers(status="pending_otp", limit=50).items) == 5
