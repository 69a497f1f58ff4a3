"""Balances: projection = sum of entries after any workload; as-of balances; statements."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from ledger.errors import InsufficientFunds
from ledger.fx import FxQuote
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from tests.ledger.conftest import funded

Raw = psycopg.Connection[Any]


def random_workload(ledger: Ledger, seed: int, steps: int) -> list[uuid.UUID]:
    """Deposits, same-currency and FX transfers, cancellations, reversals, from 4 threads."""
    customers = [uuid.uuid4() for _ in range(4)]
    accounts = [(c, funded(ledger, 5000, ccy, customer_id=c)) for c in customers for ccy in ("USD", "EUR")]
    quotes = {
        ("USD", "EUR"): FxQuote("q1", "USD", "EUR", Decimal("0.9182"), 30),
        ("EUR", "USD"): FxQuote("q2", "EUR", "USD", Decimal("1.0871"), 30),
    }

    def worker(k: int) -> None:
        rng = random.Random(seed * 100 + k)
        for _ in range(steps):
            (customer, source), (_, destination) = rng.sample(accounts, 2)
            if source.customer_id != customer:
                continue
            action = rng.random()
            try:
                if action < 0.15:
                    ledger.deposit(uuid7(), source.id, Money(rng.randint(1, 500), source.currency))
                    continue
                ccy = rng.choice([source.currency, destination.currency])
                fx = quotes.get((source.currency, destination.currency))
                t = ledger.create_transfer_with_hold(
                    uuid7(), customer, source.id, destination.id, Money(rng.randint(1, 900), ccy), fx=fx
                )
                if action < 0.3:
                    ledger.void_transfer_hold(t.id, "cancelled", "changed my mind")
                    continue
                ledger.transition_transfer(t.id, "processing")
                ledger.post_transfer(t.id, fx)
                if action > 0.9:
                    ledger.reverse_transfer(uuid7(), t.id, "ops")
            except InsufficientFunds:
                pass

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a.id for _, a in accounts]


def test_projection_equals_entries_after_a_random_concurrent_workload(ledger: Ledger, raw: Raw) -> None:
    account_ids = random_workload(ledger, seed=7, steps=40)
    assert ledger.projection_mismatches() == []
    assert all(line.balanced for line in ledger.trial_balance())
    for account_id in account_ids:
        b = ledger.balance(account_id)
        row = raw.execute(
            "SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount_minor ELSE -amount_minor END), 0) "
            "FROM entries WHERE account_id = %s",
            (account_id,),
        ).fetchone()
        assert row == (b.ledger_minor,)
        assert b.available_minor >= 0
    # every transaction balances per currency
    assert raw.execute(
        "SELECT count(*) FROM (SELECT transaction_id, currency FROM entries GROUP BY 1, 2 "
        "HAVING sum(CASE direction WHEN 'credit' THEN amount_minor ELSE -amount_minor END) <> 0) x"
    ).fetchone() == (0,)


def test_balance_as_of_comes_from_the_entries(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    account = ledger.open_account(customer, "USD")
    other = ledger.open_account(uuid.uuid4(), "USD")
    checkpoints: list[tuple[datetime, int, int]] = []

    def checkpoint() -> None:
        now = raw.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        b = ledger.balance(account.id)
        checkpoints.append((now, b.ledger_minor, b.held_minor))

    checkpoint()
    ledger.deposit(uuid7(), account.id, Money(1000, "USD"))
    checkpoint()
    t = ledger.create_transfer_with_hold(uuid7(), customer, account.id, other.id, Money(250, "USD"))
    checkpoint()
    ledger.transition_transfer(t.id, "processing")
    ledger.post_transfer(t.id)
    checkpoint()
    ledger.deposit(uuid7(), account.id, Money(5, "USD"))
    checkpoint()
    for at, ledger_minor, held_minor in checkpoints:
        past = ledger.balance(account.id, as_of=at)
        assert (past.ledger_minor, past.held_minor, past.available_minor) == (
            ledger_minor,
            held_minor,
            ledger_minor - held_minor,
        )
        assert past.as_of == at and past.version is None


def test_statement_is_newest_first_with_running_balances_and_a_cursor(ledger: Ledger) -> None:
    customer = uuid.uuid4()
    account = funded(ledger, 10_000, customer_id=customer)
    others = [ledger.open_account(uuid.uuid4(), "USD") for _ in range(3)]
    for i in range(7):
        t = ledger.create_transfer_with_hold(
            uuid7(), customer, account.id, others[i % 3].id, Money(100 + i, "USD"), description=f"payment {i}"
        )
        ledger.transition_transfer(t.id, "processing")
        ledger.post_transfer(t.id)
    ledger.deposit(uuid7(), account.id, Money(50, "USD"))

    items = []
    cursor = None
    while True:
        page = ledger.statement(account.id, limit=3, cursor=cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(items) == 9 == len({e.id for e in items})
    assert [e.posted_at for e in items] == sorted((e.posted_at for e in items), reverse=True)
    assert items[0].balance_after_minor == ledger.balance(account.id).ledger_minor
    for newer, older in itertools.pairwise(items):
        signed = newer.amount_minor if newer.direction == "credit" else -newer.amount_minor
        assert older.balance_after_minor == newer.balance_after_minor - signed
    assert items[-1].balance_after_minor == 10_000  # the first deposit
    assert items[1].description == "payment 6"
