"""Holds: pending -> posted | voided | expired, exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ledger.errors import HoldNotFound, HoldNotPending, InsufficientFunds
from ledger.holds import HoldState
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from tests.ledger.conftest import funded


def test_place_lowers_available_not_ledger(ledger: Ledger) -> None:
    account = funded(ledger, 1000)
    hold = ledger.place_hold(uuid7(), account.id, Money(300, "USD"))
    assert hold.state is HoldState.PENDING
    b = ledger.balance(account.id)
    assert (b.ledger_minor, b.held_minor, b.available_minor) == (1000, 300, 700)
    assert ledger.place_hold(hold.id, account.id, Money(300, "USD")) == hold  # idempotent by id
    with pytest.raises(InsufficientFunds):
        ledger.place_hold(uuid7(), account.id, Money(701, "USD"))


def test_double_void_is_idempotent_and_post_after_void_is_refused(ledger: Ledger) -> None:
    account, payee = funded(ledger, 1000), ledger.open_account(uuid.uuid4(), "USD")
    hold = ledger.place_hold(uuid7(), account.id, Money(300, "USD"))
    voided = ledger.void_hold(hold.id)
    assert voided.state is HoldState.VOIDED and voided.resolved_at is not None
    assert ledger.void_hold(hold.id) == voided
    assert ledger.balance(account.id).held_minor == 0  # released once, not twice
    with pytest.raises(HoldNotPending) as err:
        ledger.post_hold(hold.id, uuid7(), payee.id)
    assert err.value.state == "voided" and err.value.hold_id == hold.id
    with pytest.raises(HoldNotPending):
        ledger.expire_hold(hold.id)
    assert ledger.balance(payee.id).ledger_minor == 0


def test_void_after_post_is_refused_and_post_is_idempotent(ledger: Ledger) -> None:
    account, payee = funded(ledger, 1000), ledger.open_account(uuid.uuid4(), "USD")
    hold = ledger.place_hold(uuid7(), account.id, Money(300, "USD"))
    posting_id = uuid7()
    first = ledger.post_hold(hold.id, posting_id, payee.id)
    assert ledger.get_hold(hold.id).state is HoldState.POSTED
    assert ledger.get_hold(hold.id).transaction_id == first.transaction_id
    again = ledger.post_hold(hold.id, posting_id, payee.id)
    assert again.replayed and again.transaction_id == first.transaction_id
    with pytest.raises(HoldNotPending) as err:
        ledger.void_hold(hold.id)
    assert err.value.state == "posted"
    b = ledger.balance(account.id)
    assert (b.ledger_minor, b.held_minor) == (700, 0)
    assert ledger.balance(payee.id).ledger_minor == 300


def test_expire_and_the_sweeper(ledger: Ledger) -> None:
    account, payee = funded(ledger, 1000), ledger.open_account(uuid.uuid4(), "USD")
    explicit = ledger.place_hold(uuid7(), account.id, Money(100, "USD"))
    assert ledger.expire_hold(explicit.id).state is HoldState.EXPIRED
    assert ledger.expire_hold(explicit.id).state is HoldState.EXPIRED
    with pytest.raises(HoldNotPending):
        ledger.void_hold(explicit.id)

    due = ledger.place_hold(uuid7(), account.id, Money(200, "USD"), ttl_s=0.05)
    later = ledger.place_hold(uuid7(), account.id, Money(300, "USD"), ttl_s=3600)
    assert ledger.balance(account.id).held_minor == 500
    # past its deadline a hold cannot be posted, even before the sweeper ran
    time.sleep(0.1)
    with pytest.raises(HoldNotPending) as err:
        ledger.post_hold(due.id, uuid7(), payee.id)
    assert err.value.state == "expired"
    assert ledger.expire_due_holds() == 1
    assert ledger.get_hold(due.id).state is HoldState.EXPIRED
    assert ledger.get_hold(later.id).state is HoldState.PENDING
    assert ledger.balance(account.id).held_minor == 300
    assert ledger.expire_due_holds(now=datetime.now(UTC) + timedelta(hours=2)) == 1
    assert ledger.balance(account.id).held_minor == 0
    with pytest.raises(HoldNotFound):
        ledger.void_hold(uuid7())
    assert ledger.projection_mismatches() == []


def race_post_against_void(ledger: Ledger) -> None:
    account, payee = funded(ledger, 1000), ledger.open_account(uuid.uuid4(), "USD")
    hold = ledger.place_hold(uuid7(), account.id, Money(300, "USD"))
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def post() -> None:
        start.wait()
        try:
            ledger.post_hold(hold.id, uuid7(), payee.id)
            outcomes.append("posted")
        except HoldNotPending:
            outcomes.append("refused")

    def void() -> None:
        start.wait()
        try:
            ledger.void_hold(hold.id)
            outcomes.append("voided")
        except HoldNotPending:
            outcomes.append("refused")

    threads = [threading.Thread(target=post), threading.Thread(target=void)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["posted", "refused"], ["refused", "voided"])
    final = ledger.get_hold(hold.id).state
    assert final is (HoldState.POSTED if "posted" in outcomes else HoldState.VOIDED)
    b = ledger.balance(account.id)
    assert b.held_minor == 0 and b.ledger_minor == (700 if final is HoldState.POSTED else 1000)


def test_concurrent_post_and_void_resolve_the_hold_exactly_once(ledger: Ledger) -> None:
    for _ in range(5):
        race_post_against_void(ledger)
