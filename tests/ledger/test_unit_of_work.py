"""The unit of work (ledger.uow): one connection, one transaction, nothing without commit()."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from ledger.errors import InsufficientFunds
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from ledger.transfers import TransferStatus
from ledger.uow import UnitOfWork, UnitOfWorkClosed, session
from tests.ledger.conftest import funded

Raw = psycopg.Connection[Any]


def _transfer(ledger: Ledger, uow: UnitOfWork, amount_minor: int = 2500) -> tuple[uuid.UUID, uuid.UUID]:
    customer = uuid.uuid4()
    source = funded(ledger, 10_000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    transfer_id = uuid7()
    uow.transfers.create(
        transfer_id=transfer_id,
        customer_id=customer,
        source_account_id=source.id,
        destination_account_id=destination.id,
        amount=Money(amount_minor, "USD"),
        description=None,
        fx=None,
        hold_expires_at=None,
        workflow_id=f"transfer-{transfer_id}",
    )
    return transfer_id, source.id


def _exists(raw: Raw, transfer_id: uuid.UUID) -> bool:
    return raw.execute("SELECT count(*) FROM transfers WHERE id = %s", (transfer_id,)).fetchone() == (1,)


def test_left_without_commit_rolls_back(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with UnitOfWork(engine) as uow:
        transfer_id, source = _transfer(ledger, uow)
        assert uow.transfers.get(transfer_id).status is TransferStatus.PENDING_OTP
        assert not _exists(raw, transfer_id)  # another connection sees nothing before commit
    assert not _exists(raw, transfer_id)
    assert ledger.balance(source).held_minor == 0


def test_exception_inside_rolls_back(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with pytest.raises(RuntimeError), UnitOfWork(engine) as uow:
        transfer_id, _ = _transfer(ledger, uow)
        raise RuntimeError("boom")
    assert not _exists(raw, transfer_id)


def test_commit_makes_it_visible(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with UnitOfWork(engine) as uow:
        transfer_id, source = _transfer(ledger, uow)
        uow.commit()
    assert _exists(raw, transfer_id)
    assert ledger.balance(source).held_minor == 2500


def test_work_after_commit_needs_its_own_commit(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with UnitOfWork(engine) as uow:
        transfer_id, _ = _transfer(ledger, uow)
        uow.commit()
        uow.transfers.transition(transfer_id, TransferStatus.PROCESSING)
    assert ledger.get_transfer(transfer_id).status is TransferStatus.PENDING_OTP


def test_repositories_see_each_others_writes(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with UnitOfWork(engine) as uow:
        transfer_id, source = _transfer(ledger, uow)
        # the hold the transfer repository placed, through the hold repository
        hold_id = uow.transfers.get(transfer_id).hold_id
        assert hold_id is not None and uow.holds.get(hold_id).amount_minor == 2500
        # the event it queued, through the outbox repository
        assert [e.type for e in uow.outbox.events_for(transfer_id)] == ["transfer.initiated"]
        # SQLAlchemy-style writers (the audit chain) share the same transaction
        assert uow.sql.execute(text("SELECT count(*) FROM transfers WHERE id = :t"), {"t": transfer_id}).scalar() == 1
        uow.transfers.transition(transfer_id, TransferStatus.PROCESSING)
        posting = uow.transfers.post(transfer_id, None)
        assert posting.transfer.status is TransferStatus.POSTED
        assert len(uow.postings.legs(posting.transaction_id)) == 2
        uow.commit()
    assert ledger.balance(source).ledger_minor == 7500


def test_ledger_joins_the_callers_unit(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source = funded(ledger, 1000, customer_id=customer)
    destination = ledger.open_account(uuid.uuid4(), "USD")
    with UnitOfWork(engine) as uow:
        joined = ledger.joining(uow)
        t = joined.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(400, "USD"))
        # a refused call inside the unit undoes only itself (a savepoint): the unit goes on
        with pytest.raises(InsufficientFunds):
            joined.create_transfer_with_hold(uuid7(), customer, source.id, destination.id, Money(700, "USD"))
        assert joined.balance(source.id).held_minor == 400
        assert ledger.balance(source.id).held_minor == 0  # not committed: invisible outside
        joined.transition_transfer(t.id, TransferStatus.PROCESSING)
        joined.post_transfer(t.id)
        uow.commit()
    assert ledger.get_transfer(t.id).status is TransferStatus.POSTED
    assert ledger.balance(source.id).ledger_minor == 600


def test_closed_unit_refuses_use(engine: Engine) -> None:
    uow = UnitOfWork(engine)
    with pytest.raises(UnitOfWorkClosed):
        uow.execute("SELECT 1")


def test_query_gives_rows_by_column_name_inside_the_unit(engine: Engine, ledger: Ledger, raw: Raw) -> None:
    with UnitOfWork(engine) as uow:
        transfer_id, _ = _transfer(ledger, uow)
        row = uow.query("SELECT id, status FROM transfers WHERE id = %(id)s", {"id": transfer_id}).fetchone()
        assert row is not None
        assert (row.id, row.status) == (transfer_id, "pending_otp")
    assert not _exists(raw, transfer_id)


def test_a_savepoint_as_the_first_statement_undoes_only_itself(engine: Engine, raw: Raw) -> None:
    # The consumers' per-event savepoint can be a unit's first statement (psycopg's own
    # conn.transaction() would take it for the outer transaction and commit it).
    key = f"uow-test-{uuid.uuid4()}"
    with UnitOfWork(engine) as uow:
        with pytest.raises(psycopg.errors.DivisionByZero), uow.savepoint() as conn:
            conn.execute("SELECT 1 / 0")
        uow.execute(
            "INSERT INTO processed_events (consumer, event_id, type) VALUES (%(c)s, %(id)s, 't')",
            {"c": key, "id": uuid.uuid4()},
        )
        # the unit went on after the failed savepoint
        assert uow.execute("SELECT count(*) FROM processed_events WHERE consumer = %(c)s", {"c": key}).fetchone() == (
            1,
        )
    # left without commit: nothing, not even what followed the savepoint
    assert raw.execute("SELECT count(*) FROM processed_events WHERE consumer = %s", (key,)).fetchone() == (0,)


def test_a_session_commits_each_statement_by_itself(engine: Engine, raw: Raw) -> None:
    key = f"uow-test-{uuid.uuid4()}"
    with session(engine) as conn:
        assert conn.autocommit
        conn.execute(
            "INSERT INTO processed_events (consumer, event_id, type) VALUES (%s, %s, 't')", (key, uuid.uuid4())
        )
        # visible to another connection at once: no transaction left open
        assert raw.execute("SELECT count(*) FROM processed_events WHERE consumer = %s", (key,)).fetchone() == (1,)
    raw.execute("DELETE FROM processed_events WHERE consumer = %s", (key,))
