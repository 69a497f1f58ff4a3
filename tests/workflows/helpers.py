"""Shared set-up for transfer-workflow tests: a ledger, a worker, and a customer's view."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import cast
from uuid import UUID

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from contracts.transfer import OtpSubmission, TransferRequest, TransferState
from ledger.accounts import Account
from ledger.db import connection
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from otp.delivery import SealsText, open_code
from workflows.transfer import TransferWorkflow, workflow_id_for

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "BHD"]
CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Bank:
    client: Client
    ledger: Ledger
    task_queue: str
    sealer: SealsText

    def customer_account(self, currency: str, funded_minor: int = 0) -> Account:
        account = self.ledger.open_account(uuid7(), currency)
        if funded_minor:
            self.ledger.deposit(uuid7(), account.id, Money(funded_minor, currency))
        return account

    async def start(
        self,
        source: Account,
        destination: Account,
        amount_minor: int,
        currency: str | None = None,
        *,
        otp_ttl_s: int = 300,
        transfer_id: UUID | None = None,
        sca_exemption: str = "",
        payee_id: UUID | None = None,
    ) -> tuple[WorkflowHandle[TransferWorkflow, str], TransferState]:
        assert source.customer_id is not None
        request = TransferRequest(
            transfer_id=str(transfer_id or uuid7()),
            customer_id=str(source.customer_id),
            source_account_id=str(source.id),
            destination_account_id=str(destination.id),
            amount_minor=amount_minor,
            currency=currency or source.currency,
            otp_ttl_s=otp_ttl_s,
            sca_exemption=sca_exemption,
            payee_id=str(payee_id) if payee_id else "",
        )
        start = WithStartWorkflowOperation(
            TransferWorkflow.run,
            request,
            id=workflow_id_for(request.transfer_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        for attempt in range(50):
            try:
                # cast: temporalio's overloads read the async update's result as its coroutine.
                state = cast(
                    TransferState,
                    await self.client.execute_update_with_start_workflow(
                        TransferWorkflow.initiated, start_workflow_operation=start
                    ),
                )
                break
            except RPCError as err:
                # The server refuses an update until it has seen a poller on the queue: a worker
                # that has just started may not have polled yet.
                if "no poller seen" not in str(err) or attempt == 49:
                    raise
                await asyncio.sleep(0.1)
                start = WithStartWorkflowOperation(
                    TransferWorkflow.run,
                    request,
                    id=workflow_id_for(request.transfer_id),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
        return await start.workflow_handle(), state

    def trusted_payee(self, source: Account, destination: Account) -> UUID:
        """A trusted payee of the source's owner for the destination (rows written directly:
        the API's confirmation flow is tested in tests/api/test_payees.py)."""
        payee_id = uuid7()
        with connection(self.ledger.engine) as conn:
            conn.execute(
                "INSERT INTO customers (id, email, full_name, password_hash) VALUES (%s, %s, 'Payer', 'x') "
                "ON CONFLICT (id) DO NOTHING",
                (source.customer_id, f"{source.customer_id}@example.test"),
            )
            conn.execute(
                "INSERT INTO payees (id, customer_id, account_id, account_number, name, status, trusted_at) "
                "VALUES (%s, %s, %s, %s, 'Payee', 'trusted', now())",
                (payee_id, source.customer_id, destination.id, destination.account_number),
            )
        return payee_id

    def otp_code(self, transfer_id: str) -> str:
        """The code from the transfer's `notification.requested` outbox row (what the customer
        reads), opened with the seal key: the row itself holds it sealed."""
        events = [e for e in self.ledger.events_for(UUID(transfer_id)) if e.type == "notification.requested"]
        assert len(events) == 1, events
        code = open_code(self.sealer, events[0].payload["data"])
        assert code is not None and CODE.fullmatch(code)
        return code

    async def submit(self, handle: WorkflowHandle[TransferWorkflow, str], code: str) -> str:
        submission = OtpSubmission(submission_id=uuid.uuid4().hex, code=code)
        await handle.signal(TransferWorkflow.submit_otp, submission)
        for _ in range(500):
            state = await handle.query(TransferWorkflow.state)
            if submission.submission_id in state.otp_outcomes:
                return state.otp_outcomes[submission.submission_id].outcome
            await asyncio.sleep(0.02)
        raise AssertionError("the workflow never answered the OTP submission")


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def result(handle: WorkflowHandle[TransferWorkflow, str]) -> str:
    return await asyncio.wait_for(handle.result(), timeout=60)


ONE_MINUTE = timedelta(minutes=1)
