"""Invariants the database enforces by itself, against raw SQL that bypasses the ledger."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from ledger.errors import UnbalancedTransaction
from ledger.ids import house_account_id, uuid7
from ledger.legs import Leg
from ledger.money import Money
from ledger.postings import Posting, TransactionKind
from ledger.service import Ledger
from tests.ledger.conftest import funded

Raw = psycopg.Connection[Any]


def test_entries_are_append_only(ledger: Ledger, raw: Raw) -> None:
    account = funded(ledger, 1000)
    entry_count = raw.execute("SELECT count(*) FROM entries").fetchone()
    for sql in (
        "UPDATE entries SET amount_minor = amount_minor + 1",
        "UPDATE entries SET amount_minor = 1 WHERE false",  # refused even when it matches nothing
        f"DELETE FROM entries WHERE account_id = '{account.id}'",
        "TRUNCATE entries CASCADE",
        "UPDATE ledger_transactions SET description = 'edited'",
        "DELETE FROM ledger_transactions",
    ):
        with pytest.raises(psycopg.DatabaseError) as err:
            raw.execute(sql)
        assert err.value.sqlstate == "LF010", sql
        assert "append-only" in str(err.value)
    assert raw.execute("SELECT count(*) FROM entries").fetchone() == entry_count


def test_unbalanced_entries_are_refused_by_the_database(ledger: Ledger, raw: Raw) -> None:
    a, b = funded(ledger, 1000), funded(ledger, 0)
    txn = uuid7()
    raw.execute(
        "INSERT INTO ledger_transactions (id, idempotency_key, kind) VALUES (%s, %s, 'adjustment')", (txn, uuid7())
    )
    insert = (
        "INSERT INTO entries (transaction_id, leg_no, account_id, currency, direction, amount_minor, "
        "balance_after_minor, posted_at) VALUES (%s, 1, %s, 'USD', 'debit', 10, 0, now()), "
        "(%s, 2, %s, 'USD', 'credit', {amount}, 0, now() + interval '1 second')"
    )
    with pytest.raises(psycopg.DatabaseError) as err:
        raw.execute(insert.format(amount=9), (txn, a.id, txn, b.id))
    assert err.value.sqlstate == "LF006"
    # one leg alone is unbalanced too
    with pytest.raises(psycopg.DatabaseError):
        raw.execute(insert.split("),")[0] + ")", (txn, a.id))
    # the low-level posting function refuses it as well (legs given directly, no Python check)
    with pytest.raises(psycopg.DatabaseError) as err:
        raw.execute(
            "SELECT * FROM ledger_post(%s, %s, 'adjustment', NULL, NULL, NULL, NULL, %s::uuid[], %s::text[], "
            "%s::bigint[], NULL, NULL)",
            (uuid7(), uuid7(), [a.id, b.id], ["USD", "USD"], [-10, 9]),
        )
    assert err.value.sqlstate == "LF006"
    # and so does Python, before any round trip
    with pytest.raises(UnbalancedTransaction):
        Posting(
            uuid7(), TransactionKind.ADJUSTMENT, (Leg.debit(a.id, Money(10, "USD")), Leg.credit(b.id, Money(9, "USD")))
        )
    assert raw.execute("SELECT count(*) FROM entries WHERE transaction_id = %s", (txn,)).fetchone() == (0,)


def test_a_leg_in_the_wrong_currency_is_refused(ledger: Ledger, raw: Raw) -> None:
    usd = funded(ledger, 1000)
    eur = funded(ledger, 0, "EUR")
    with pytest.raises(psycopg.DatabaseError) as err:
        raw.execute(
            "SELECT * FROM ledger_post(%s, %s, 'adjustment', NULL, NULL, NULL, NULL, %s::uuid[], %s::text[], "
            "%s::bigint[], NULL, NULL)",
            (uuid7(), uuid7(), [usd.id, eur.id], ["USD", "USD"], [-10, 10]),
        )
    assert isinstance(err.value, pg_errors.ForeignKeyViolation)


def test_a_customer_projection_cannot_go_below_zero_even_by_hand(ledger: Ledger, raw: Raw) -> None:
    account = funded(ledger, 100)
    with pytest.raises(pg_errors.CheckViolation):
        raw.execute("UPDATE account_balances SET ledger_minor = -1 WHERE account_id = %s", (account.id,))
    with pytest.raises(pg_errors.CheckViolation):
        raw.execute("UPDATE account_balances SET held_minor = 101 WHERE account_id = %s", (account.id,))
    # house accounts may go below zero (settlement is, after a deposit)
    settlement = house_account_id("settlement", "USD")
    row = raw.execute("SELECT ledger_minor FROM account_balances WHERE account_id = %s", (settlement,)).fetchone()
    assert row == (-100,)


def test_a_resolved_hold_cannot_change_again(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    account = funded(ledger, 100, customer_id=customer)
    payee = ledger.open_account(uuid.uuid4(), "USD")
    t = ledger.create_transfer_with_hold(uuid7(), customer, account.id, payee.id, Money(40, "USD"))
    assert t.hold_id is not None
    hold = ledger.get_hold(t.hold_id)
    ledger.void_transfer_hold(t.id, "cancelled")
    for sql in (
        "UPDATE holds SET state = 'pending', resolved_at = NULL WHERE id = %s",
        "UPDATE holds SET state = 'expired' WHERE id = %s",
    ):
        with pytest.raises(psycopg.DatabaseError) as err:
            raw.execute(sql, (hold.id,))
        assert err.value.sqlstate == "LF007"
    with pytest.raises(pg_errors.CheckViolation):  # one state: 'posted' needs its transaction
        raw.execute(
            "INSERT INTO holds (id, account_id, currency, amount_minor, state) VALUES (%s, %s, 'USD', 1, 'posted')",
            (uuid7(), account.id),
        )
    with pytest.raises(pg_errors.InvalidTextRepresentation):  # not a state at all
        raw.execute(
            "INSERT INTO holds (id, account_id, currency, amount_minor, state, resolved_at) "
            "VALUES (%s, %s, 'USD', 1, 'bogus', now())",
            (uuid7(), account.id),
        )
    with pytest.raises(psycopg.DatabaseError):
        raw.execute("DELETE FROM holds WHERE id = %s", (hold.id,))


def test_accounts_keep_what_they_are(ledger: Ledger, raw: Raw) -> None:
    account = funded(ledger, 0)
    with pytest.raises(psycopg.DatabaseError) as err:
        raw.execute("UPDATE accounts SET currency = 'EUR' WHERE id = %s", (account.id,))
    assert err.value.sqlstate == "LF010"
    with pytest.raises(psycopg.DatabaseError):  # the trigger, before the CHECK on customer accounts
        raw.execute("UPDATE accounts SET allow_overdraft = true WHERE id = %s", (account.id,))
    with pytest.raises(psycopg.DatabaseError):
        raw.execute("DELETE FROM accounts WHERE id = %s", (account.id,))
