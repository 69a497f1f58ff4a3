"""Postings: idempotent by business id, no overdraft under concurrency, nothing half-written."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.errors import AccountFrozen, AccountNotFound, CurrencyMismatch, DuplicatePosting, InsufficientFunds
from ledger.ids import house_account_id, uuid7
from ledger.legs import Leg
from ledger.money import Money
from ledger.postings import Posting, TransactionKind
from ledger.service import Ledger
from tests.ledger.conftest import count_rows, funded

Raw = psycopg.Connection[Any]


def test_deposit_debits_settlement_credits_customer_and_announces_it(ledger: Ledger, raw: Raw) -> None:
    account = ledger.open_account(uuid.uuid4(), "USD")
    deposit_id = uuid7()
    d = ledger.deposit(deposit_id, account.id, Money(2500, "USD"), external_reference="wire-42")
    assert not d.replayed
    assert ledger.balance(account.id).ledger_minor == 2500
    assert ledger.balance(house_account_id("settlement", "USD")).ledger_minor == -2500
    events = [e for e in ledger.events_for(account.id) if e.type == "account.deposited"]
    assert len(events) == 1
    assert events[0].payload["data"]["deposit_id"] == str(deposit_id)
    assert events[0].payload["data"]["amount_minor"] == 2500


def test_replaying_a_posting_returns_the_first_result_and_writes_nothing(ledger: Ledger, raw: Raw) -> None:
    account = ledger.open_account(uuid.uuid4(), "USD")
    deposit_id = uuid7()
    first = ledger.deposit(deposit_id, account.id, Money(700, "USD"))
    before = count_rows(raw)
    for _ in range(3):
        again = ledger.deposit(deposit_id, account.id, Money(700, "USD"))
        assert again.replayed
        assert again.transaction_id == first.transaction_id
        assert again.posted_at == first.posted_at
    assert count_rows(raw) == before
    assert ledger.balance(account.id).ledger_minor == 700
    # the same key for a different request is refused, and still writes nothing
    with pytest.raises(DuplicatePosting):
        ledger.deposit(deposit_id, account.id, Money(701, "USD"))
    assert count_rows(raw) == before


def test_deposit_refusals(ledger: Ledger) -> None:
    account = ledger.open_account(uuid.uuid4(), "USD")
    with pytest.raises(CurrencyMismatch):
        ledger.deposit(uuid7(), account.id, Money(1, "EUR"))
    with pytest.raises(AccountNotFound):
        ledger.deposit(uuid7(), uuid7(), Money(1, "USD"))
    ledger.set_account_status(account.id, "frozen", account.version)
    with pytest.raises(AccountFrozen) as err:
        ledger.deposit(uuid7(), account.id, Money(1, "USD"))
    assert err.value.code == "account_frozen"


def test_fifty_concurrent_posters_never_overdraw_one_account(ledger: Ledger, engine: Engine, raw: Raw) -> None:
    initial_minor, amount_minor, posters, attempts = 1000, 30, 50, 2
    source = funded(ledger, initial_minor)
    sinks = [ledger.open_account(uuid.uuid4(), "USD").id for _ in range(posters)]
    start = threading.Barrier(posters)
    outcomes: list[str] = []
    lock = threading.Lock()

    def poster(i: int) -> None:
        start.wait()
        for _ in range(attempts):
            posting = Posting(
                uuid7(),
                TransactionKind.ADJUSTMENT,
                (Leg.debit(source.id, Money(amount_minor, "USD")), Leg.credit(sinks[i], Money(amount_minor, "USD"))),
            )
            try:
                ledger.post(posting)
                result = "ok"
            except InsufficientFunds:
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(posters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    succeeded = outcomes.count("ok")
    assert len(outcomes) == posters * attempts
    assert succeeded == initial_minor // amount_minor  # 33: every affordable posting went through
    balance = ledger.balance(source.id)
    assert balance.ledger_minor == initial_minor - succeeded * amount_minor >= 0
    row = raw.execute(
        "SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount_minor ELSE -amount_minor END), 0), "
        "min(balance_after_minor) FROM entries WHERE account_id = %s",
        (source.id,),
    ).fetchone()
    assert row is not None
    assert row[0] == balance.ledger_minor  # the projection equals the sum of the entries
    assert row[1] >= 0  # and the running balance never dipped below zero
    assert ledger.projection_mismatches() == []


def test_a_backend_killed_mid_posting_leaves_nothing_half_written(
    ledger: Ledger, raw: Raw, migrated_db_url: str
) -> None:
    source, destination = funded(ledger, 500), ledger.open_account(uuid.uuid4(), "USD")
    before = count_rows(raw)
    url = migrated_db_url.replace("+psycopg", "")
    # A third connection holds the destination's projection row, so the posting blocks inside
    # the function after it has written the transaction row, the outbox row and the source's
    # projection update -- and is killed there.
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as victim:
        blocker.execute("SELECT 1 FROM account_balances WHERE account_id = %s FOR UPDATE", (destination.id,))
        victim_pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        error: list[BaseException] = []

        def post() -> None:
            try:
                victim.execute(
                    "SELECT * FROM ledger_post(%s, %s, 'adjustment', NULL, NULL, NULL, NULL, %s::uuid[], "
                    "%s::text[], %s::bigint[], NULL, NULL)",
                    (uuid7(), uuid7(), [source.id, destination.id], ["USD", "USD"], [-200, 200]),
                )
            except BaseException as exc:
                error.append(exc)

        worker = threading.Thread(target=post)
        worker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until it is stuck on the row lock, mid-function
            waiting = raw.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (victim_pid,)
            ).fetchone()
            if waiting and waiting[0] == "Lock":
                break
            time.sleep(0.01)
        raw.execute("SELECT pg_terminate_backend(%s)", (victim_pid,))
        worker.join(10)
        blocker.rollback()
    assert error and isinstance(error[0], psycopg.OperationalError)
    assert count_rows(raw) == before
    assert ledger.balance(source.id).ledger_minor == 500
    assert ledger.projection_mismatches() == []


def test_a_session_killed_between_statements_leaves_nothing(ledger: Ledger, raw: Raw, migrated_db_url: str) -> None:
    account = ledger.open_account(uuid.uuid4(), "USD")
    before = count_rows(raw)
    with psycopg.connect(migrated_db_url.replace("+psycopg", "")) as victim:  # one explicit transaction
        victim.execute(
            "SELECT * FROM ledger_post(%s, %s, 'deposit', NULL, NULL, NULL, NULL, %s::uuid[], %s::text[], "
            "%s::bigint[], NULL, NULL)",
            (uuid7(), uuid7(), [house_account_id("settlement", "USD"), account.id], ["USD", "USD"], [-50, 50]),
        )
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        raw.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
    assert count_rows(raw) == before
    assert ledger.balance(account.id).ledger_minor == 0


def test_crossing_postings_queue_instead_of_deadlocking(ledger: Ledger) -> None:
    a, b = funded(ledger, 10_000), funded(ledger, 10_000)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def poster(k: int) -> None:
        source, destination = (a, b) if k % 2 else (b, a)
        start.wait()
        try:
            for _ in range(15):
                legs = (Leg.debit(source.id, Money(7, "USD")), Leg.credit(destination.id, Money(7, "USD")))
                ledger.post(Posting(uuid7(), TransactionKind.ADJUSTMENT, legs))
        except BaseException as exc:  # a deadlock would surface here as a database error
            errors.append(exc)

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.balance(a.id).ledger_minor + ledger.balance(b.id).ledger_minor == 20_000
    assert ledger.balance(a.id).ledger_minor == 10_000  # 4 x 15 each way
