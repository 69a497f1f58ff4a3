"""The transfer workflow against a real Temporal dev server and a real PostgreSQL ledger."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from temporalio.service import RPCError

from api import transfer_flow
from contracts.transfer import OtpSubmission, ReviewDecision, VerifyOtpResult
from ledger.ids import uuid7
from ledger.transfers import TransferStatus
from tests.workflows.helpers import Bank, result, wrong
from workflows.transfer import TransferWorkflow


def assert_hold_released(bank: Bank, account_id: UUID, ledger_minor: int) -> None:
    balance = bank.ledger.balance(account_id)
    assert balance.held_minor == 0
    assert balance.ledger_minor == ledger_minor
    assert balance.available_minor == ledger_minor


def posted_events(bank: Bank, transfer_id: str) -> list[str]:
    return [str(e.id) for e in bank.ledger.events_for(UUID(transfer_id)) if e.type == "transfer.posted"]


async def test_same_currency_happy_path(bank: Bank) -> None:
    alice = bank.customer_account("USD", 100_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 40_000)
    assert state.status == "pending_otp"
    assert state.attempts_left == 5
    # The hold is in place while the OTP is awaited: available drops, ledger does not.
    held = bank.ledger.balance(alice.id)
    assert (held.ledger_minor, held.held_minor, held.available_minor) == (100_000, 40_000, 60_000)

    assert await bank.submit(handle, bank.otp_code(state.transfer_id)) == "accepted"
    assert await result(handle) == "posted"

    assert bank.ledger.balance(alice.id).available_minor == 60_000
    assert bank.ledger.balance(alice.id).held_minor == 0
    assert bank.ledger.balance(bob.id).available_minor == 40_000
    transfer = bank.ledger.get_transfer(UUID(state.transfer_id))
    assert transfer.status is TransferStatus.POSTED
    legs = bank.ledger.transfer_legs(transfer.id)
    assert sorted((str(leg.account_id), leg.direction, leg.amount_minor) for leg in legs) == sorted(
        [(str(alice.id), "debit", 40_000), (str(bob.id), "credit", 40_000)]
    )
    assert len(posted_events(bank, state.transfer_id)) == 1
    final = await handle.query(TransferWorkflow.state)
    assert [e.event for e in final.timeline][-3:] == ["otp_accepted", "processing", "posted"]


async def test_cross_currency_posts_balanced_fx_legs(bank: Bank) -> None:
    alice = bank.customer_account("USD", 100_000)
    pierre = bank.customer_account("EUR")
    handle, state = await bank.start(alice, pierre, 10_000, "USD")
    assert await bank.submit(handle, bank.otp_code(state.transfer_id)) == "accepted"
    assert await result(handle) == "posted"

    transfer = bank.ledger.get_transfer(UUID(state.transfer_id))
    assert transfer.fx_quote_id is not None and transfer.fx_rate is not None
    legs = bank.ledger.transfer_legs(transfer.id)
    assert len(legs) in (4, 6)  # four FX legs, plus the spread pair when it is not zero
    for currency in ("USD", "EUR"):
        debits = sum(leg.amount_minor for leg in legs if leg.currency == currency and leg.direction == "debit")
        credits = sum(leg.amount_minor for leg in legs if leg.currency == currency and leg.direction == "credit")
        assert debits == credits > 0
    assert bank.ledger.balance(alice.id).ledger_minor == 90_000
    received = bank.ledger.balance(pierre.id).ledger_minor
    assert received == transfer.destination_amount_minor
    # 100.00 USD at 0.92 less a 50 bps spread, rounded for the house: at most 91.54 EUR.
    assert 0 < received <= 9_154


async def test_wrong_code_then_right_code(bank: Bank) -> None:
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000)
    code = bank.otp_code(state.transfer_id)
    assert await bank.submit(handle, wrong(code)) == "invalid"
    assert (await handle.query(TransferWorkflow.state)).attempts_left == 4
    assert await bank.submit(handle, code) == "accepted"
    assert await result(handle) == "posted"
    assert bank.ledger.balance(bob.id).ledger_minor == 1_000


async def test_otp_outcome_update_answers_a_signalled_code(bank: Bank) -> None:
    """What the API does: the code by signal (durable), its outcome by the `otp_outcome` update."""
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000)
    code = bank.otp_code(state.transfer_id)

    async def submit(submission_id: str, value: str) -> VerifyOtpResult:
        await handle.signal(TransferWorkflow.submit_otp, OtpSubmission(submission_id=submission_id, code=value))
        return await handle.execute_update(TransferWorkflow.otp_outcome, submission_id)  # type: ignore[arg-type]

    assert await submit("u-1", wrong(code)) == VerifyOtpResult("invalid", 4)
    # The same submission again is answered from the record: no second attempt is spent.
    assert await submit("u-1", wrong(code)) == VerifyOtpResult("invalid", 4)
    # The API's way: an accepted code usually posts and closes the workflow in the task that
    # checked it, before the update reaches it; the answer then comes from the check's record (otp_attempts).
    assert await transfer_flow.submit_otp(
        bank.client, bank.ledger.engine, UUID(state.transfer_id), handle.id, code
    ) == VerifyOtpResult("accepted", 4)
    assert await result(handle) == "posted"
    assert bank.ledger.balance(bob.id).ledger_minor == 1_000
    assert len(posted_events(bank, state.transfer_id)) == 1


async def test_five_wrong_codes_lock_and_release_the_hold(bank: Bank) -> None:
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000)
    code = bank.otp_code(state.transfer_id)
    outcomes = [await bank.submit(handle, wrong(code)) for _ in range(5)]
    assert outcomes == ["invalid"] * 4 + ["locked"]
    assert await result(handle) == "failed"
    transfer = bank.ledger.get_transfer(UUID(state.transfer_id))
    assert (transfer.status, transfer.failure_reason) == (TransferStatus.FAILED, "otp_locked")
    assert_hold_released(bank, alice.id, 50_000)
    # The right code after the lock authorises nothing: the workflow is closed to it.
    with pytest.raises(RPCError, match="already completed"):
        await bank.submit(handle, code)
    assert bank.ledger.balance(bob.id).ledger_minor == 0


async def test_no_code_before_ttl_expires(bank: Bank) -> None:
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000, otp_ttl_s=2)
    assert await result(handle) == "expired"
    assert bank.ledger.get_transfer(UUID(state.transfer_id)).status is TransferStatus.EXPIRED
    assert_hold_released(bank, alice.id, 50_000)


async def test_cancel_before_approval(bank: Bank) -> None:
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000)
    await handle.signal(TransferWorkflow.cancel)
    assert await result(handle) == "cancelled"
    assert bank.ledger.get_transfer(UUID(state.transfer_id)).status is TransferStatus.CANCELLED
    assert_hold_released(bank, alice.id, 50_000)


async def wait_status(handle: object, status: str) -> None:
    for _ in range(300):
        state = await handle.query(TransferWorkflow.state)  # type: ignore[attr-defined]
        if state.status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached {status}")


async def test_review_approve(bank: Bank) -> None:
    alice = bank.customer_account("USD", 500_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 200_000)  # over the 1,000.00 USD test threshold
    assert await bank.submit(handle, bank.otp_code(state.transfer_id)) == "accepted"
    await wait_status(handle, "in_review")
    assert bank.ledger.get_transfer(UUID(state.transfer_id)).status is TransferStatus.IN_REVIEW
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=True, staff_id="approver-1"))
    assert await result(handle) == "posted"
    assert bank.ledger.balance(bob.id).ledger_minor == 200_000


async def test_review_reject_releases_the_hold(bank: Bank) -> None:
    alice = bank.customer_account("USD", 500_000)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 200_000)
    assert await bank.submit(handle, bank.otp_code(state.transfer_id)) == "accepted"
    await wait_status(handle, "in_review")
    await handle.signal(TransferWorkflow.review, ReviewDecision(approved=False, staff_id="a-1", reason="aml"))
    assert await result(handle) == "rejected"
    assert bank.ledger.get_transfer(UUID(state.transfer_id)).status is TransferStatus.REJECTED
    assert_hold_released(bank, alice.id, 500_000)


async def test_insufficient_funds_fails_fast_without_a_hold(bank: Bank) -> None:
    alice = bank.customer_account("USD", 500)
    bob = bank.customer_account("USD")
    handle, state = await bank.start(alice, bob, 1_000)
    assert (state.status, state.failure_reason) == ("failed", "insufficient_funds")
    assert await result(handle) == "failed"
    assert_hold_released(bank, alice.id, 500)


async def test_same_transfer_started_twice_is_one_workflow_one_posting(bank: Bank) -> None:
    alice = bank.customer_account("USD", 50_000)
    bob = bank.customer_account("USD")
    transfer_id = uuid7()
    first, state1 = await bank.start(alice, bob, 1_000, transfer_id=transfer_id)
    second, state2 = await bank.start(alice, bob, 1_000, transfer_id=transfer_id)
    assert first.result_run_id == second.result_run_id
    assert state1.status == state2.status == "pending_otp"
    assert await bank.submit(second, bank.otp_code(str(transfer_id))) == "accepted"
    assert await result(first) == "posted"
    assert bank.ledger.balance(alice.id).ledger_minor == 49_000
    assert len(posted_events(bank, str(transfer_id))) == 1
    assert len(bank.ledger.transfer_legs(transfer_id)) == 2
