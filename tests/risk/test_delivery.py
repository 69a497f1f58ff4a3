"""Which way a verdict reaches its workflow (risk.assess.leave_for_check), on a real PostgreSQL.

While the transfer waits for its code the consumer sends nothing and marks the verdict
`check`; the step that takes the transfer out of `pending_otp` reads it. Once the transfer
has left `pending_otp` the verdict goes by signal. The two decide under the transfer's row
lock, so a consumer that looks while the step is committing waits for it and then sees the
new status: it never leaves a verdict for a check that has already happened.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from activities.transfer import TransferActivities
from contracts.transfer import StatusInput
from fx.rates import TableRateProvider
from ledger.accounts import Account
from ledger.db import transaction
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from ledger.transfers import TransferStatus
from ledger.uow import UnitOfWork
from risk import assess as risk_assess
from security.sealed import load_sealer
from tests.risk.test_facts import initiated
from tests.workflows.conftest import TEST_SETTINGS
from worker.build import transfer_policy


def delivered_by(engine: Engine, transfer: risk_assess.InitiatedTransfer) -> tuple[str | None, bool]:
    with transaction(engine) as conn:
        row = conn.execute(
            "SELECT delivered_by, signalled_at IS NOT NULL FROM risk_assessments WHERE transfer_id = %s",
            (transfer.transfer_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def assess(engine: Engine, transfer: risk_assess.InitiatedTransfer) -> bool:
    """What the risk consumer does for one event: record, then decide (one transaction)."""
    with UnitOfWork(engine) as uow:
        assert risk_assess.record_assessment(uow.conn, transfer) is not None
        left = risk_assess.leave_for_check(uow.conn, transfer.transfer_id)
        uow.commit()
    return left


@dataclass(frozen=True)
class Parties:
    ledger: Ledger
    alice: Account
    bob: Account

    def transfer(self, amount_minor: int) -> risk_assess.InitiatedTransfer:
        """A new transfer in `pending_otp` (held), as its transfer.initiated event says."""
        return initiated(self.ledger, self.alice, self.bob, amount_minor)


@pytest.fixture
def parties(engine: Engine) -> Parties:
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(["USD"])
    alice = ledger.open_account(uuid7(), "USD")
    ledger.deposit(uuid7(), alice.id, Money(1_000_000, "USD"))
    return Parties(ledger, alice, ledger.open_account(uuid7(), "USD"))


def test_waiting_for_the_code_it_is_left_for_the_check_and_read_there(engine: Engine, parties: Parties) -> None:
    waiting = parties.transfer(1_000)
    assert assess(engine, waiting) is True
    assert delivered_by(engine, waiting) == ("check", True)
    with UnitOfWork(engine) as uow:
        uow.transfers.transition(waiting.transfer_id, TransferStatus.PROCESSING)
        found = risk_assess.verdict_at_check(uow.conn, waiting.transfer_id)
    assert found is not None and found.verdict == "allow" and found.event_id == waiting.event_id

    # Past its code already: the verdict must be signalled (still undelivered, for the sweep).
    moved = parties.transfer(2_000)
    parties.ledger.transition_transfer(moved.transfer_id, "processing")
    assert assess(engine, moved) is False
    assert delivered_by(engine, moved) == (None, False)
    with UnitOfWork(engine) as uow:
        risk_assess.mark_signalled(uow.conn, [moved.transfer_id])
        uow.commit()
    assert delivered_by(engine, moved) == ("signal", True)


def test_a_consumer_looking_while_the_code_is_taken_waits_and_then_signals(engine: Engine, parties: Parties) -> None:
    transfer = parties.transfer(1_000)

    outcome: list[bool] = []
    with UnitOfWork(engine) as step:
        # The accepting check has moved the transfer and read no verdict (none yet), and has
        # not committed.
        step.transfers.transition(transfer.transfer_id, TransferStatus.PROCESSING)
        assert risk_assess.verdict_at_check(step.conn, transfer.transfer_id) is None
        consumer = threading.Thread(target=lambda: outcome.append(assess(engine, transfer)))
        consumer.start()
        consumer.join(timeout=2)
        # Without the row lock the consumer would have read the last committed status
        # (`pending_otp`) and left the verdict for a check that has already happened.
        assert consumer.is_alive(), "the consumer did not wait for the step's commit"
        step.commit()
    consumer.join(timeout=30)
    assert outcome == [False]  # it saw `processing`: the verdict goes by signal
    assert delivered_by(engine, transfer) == (None, False)


def test_the_exemptions_status_step_reads_the_verdict_and_other_moves_do_not(engine: Engine, parties: Parties) -> None:
    """The exemption's step out of `pending_otp` (no code to check) brings the verdict left for
    it, as an accepted code does; without it such a transfer would wait for a signal that the
    consumer, having seen `pending_otp`, never sends."""
    activities = TransferActivities(
        parties.ledger,
        TableRateProvider(engine),
        transfer_policy(TEST_SETTINGS.model_copy(update={"risk_enabled": True})),
        load_sealer(TEST_SETTINGS),
    )
    exempt = parties.transfer(1_000)
    assert assess(engine, exempt) is True
    found = activities.set_transfer_status(
        StatusInput(transfer_id=str(exempt.transfer_id), status="processing", with_risk=True)
    )
    assert found is not None and (found.verdict, found.event_id) == ("allow", str(exempt.event_id))

    other = parties.transfer(2_000)
    assert assess(engine, other) is True
    assert activities.set_transfer_status(StatusInput(transfer_id=str(other.transfer_id), status="in_review")) is None
    assert parties.ledger.get_transfer(other.transfer_id).status.value == "in_review"
