"""Accounts: idempotent creation, house accounts per currency, optimistic locking on status."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from ledger.accounts import AccountKind, AccountStatus
from ledger.errors import (
    AccountClosed,
    AccountFrozen,
    DuplicatePosting,
    IllegalTransition,
    UnsupportedCurrency,
    VersionConflict,
)
from ledger.ids import house_account_id, uuid7
from ledger.money import Money
from ledger.service import Ledger
from tests.ledger.conftest import count_rows, funded

Raw = psycopg.Connection[Any]


def test_open_account_is_idempotent_and_announced(ledger: Ledger, raw: Raw) -> None:
    customer, account_id = uuid.uuid4(), uuid7()
    account = ledger.open_account(customer, "BHD", label="savings", account_id=account_id)
    assert (account.kind, account.status, account.version, account.allow_overdraft) == (
        AccountKind.CUSTOMER,
        AccountStatus.ACTIVE,
        1,
        False,
    )
    before = count_rows(raw)
    assert ledger.open_account(customer, "BHD", label="savings", account_id=account_id) == account
    assert count_rows(raw) == before
    with pytest.raises(DuplicatePosting):
        ledger.open_account(uuid.uuid4(), "BHD", account_id=account_id)
    with pytest.raises(UnsupportedCurrency):
        ledger.open_account(customer, "XYZ")
    (event,) = ledger.events_for(account.id)
    assert event.type == "account.opened" and event.topic == "ledgerflow.accounts"
    assert ledger.list_accounts(customer) == [account]
    b = ledger.balance(account.id)
    assert (b.currency, b.ledger_minor, b.held_minor, b.available_minor) == ("BHD", 0, 0, 0)


def test_house_accounts_are_created_once_with_derived_ids(ledger: Ledger) -> None:
    first = ledger.ensure_house_accounts(["CHF", "USD"])
    again = ledger.ensure_house_accounts(["USD", "CHF", "CHF"])
    assert sorted(a.id for a in first) == sorted(a.id for a in again)
    assert {(a.kind.value, a.currency) for a in first} == {
        (k, c) for k in ("settlement", "fx_liquidity", "fx_revenue") for c in ("CHF", "USD")
    }
    assert all(a.allow_overdraft and a.customer_id is None for a in first)
    assert ledger.house_account("settlement", "CHF").id == house_account_id("settlement", "CHF")


def test_status_is_compare_and_set_and_freezing_stops_postings(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    account = funded(ledger, 500, customer_id=customer)
    payee = ledger.open_account(uuid.uuid4(), "USD")
    current = ledger.get_account(account.id)
    with pytest.raises(VersionConflict) as err:
        ledger.set_account_status(account.id, "frozen", current.version - 1)
    assert err.value.code == "version_conflict"
    frozen = ledger.set_account_status(account.id, "frozen", current.version)
    assert frozen.status is AccountStatus.FROZEN and frozen.version == current.version + 1
    with pytest.raises(AccountFrozen):
        ledger.create_transfer_with_hold(uuid7(), customer, account.id, payee.id, Money(1, "USD"))
    active = ledger.set_account_status(account.id, AccountStatus.ACTIVE, frozen.version)
    t = ledger.create_transfer_with_hold(uuid7(), customer, account.id, payee.id, Money(100, "USD"))
    # frozen between the hold and the posting: the posting is refused under the row lock
    frozen_again = ledger.set_account_status(payee.id, "frozen", payee.version)
    ledger.transition_transfer(t.id, "processing")
    with pytest.raises(AccountFrozen):
        ledger.post_transfer(t.id)
    ledger.set_account_status(payee.id, "active", frozen_again.version)
    ledger.post_transfer(t.id)
    changes = [e for e in ledger.events_for(account.id) if e.type == "account.status_changed"]
    assert [(e.payload["data"]["previous_status"], e.payload["data"]["status"]) for e in changes] == [
        ("active", "frozen"),
        ("frozen", "active"),
    ]
    assert len({e.id for e in changes}) == 2
    assert active.version == frozen.version + 1


def test_closing_needs_an_empty_account_and_is_final(ledger: Ledger) -> None:
    account = funded(ledger, 10)
    with pytest.raises(IllegalTransition):
        ledger.set_account_status(account.id, "closed", ledger.get_account(account.id).version)
    empty = ledger.open_account(uuid.uuid4(), "USD")
    closed = ledger.set_account_status(empty.id, "closed", empty.version)
    with pytest.raises(IllegalTransition):
        ledger.set_account_status(empty.id, "active", closed.version)
    with pytest.raises(AccountClosed):
        ledger.deposit(uuid7(), empty.id, Money(1, "USD"))
    with pytest.raises(IllegalTransition):
        settlement = ledger.house_account("settlement", "USD")
        ledger.set_account_status(settlement.id, "frozen", settlement.version)
