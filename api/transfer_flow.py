"""The API's side of the transfer workflow: start it, signal it, and wait for what it decides.

The workflow is the authority on a transfer's progress; the API only asks and waits, with
bounded waits everywhere so a request never hangs on a stuck worker (a timed-out request
answers 503 and can be retried: every step here is idempotent by transfer id or by
submission id).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem
from contracts.transfer import OtpSubmission, ReviewDecision, TransferRequest, TransferState, VerifyOtpResult
from ledger.db import connection
from otp import store as otp_store
from workflows.transfer import TransferWorkflow, workflow_id_for

POLL_S: Final = 0.02
INITIATE_TIMEOUT_S: Final = 15.0
OTP_OUTCOME_TIMEOUT_S: Final = 10.0
SETTLE_TIMEOUT_S: Final = 5.0


def _timeout(what: str) -> Problem:
    return Problem(
        503,
        "workflow_timeout",
        "Service unavailable",
        f"The transfer workflow did not answer in time ({what}); the request can be retried safely.",
        headers={"Retry-After": "1"},
    )


def _gone(err: RPCError) -> bool:
    return err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


async def initiate(
    client: Client, request: TransferRequest, *, task_queue: str, memo: dict[str, object]
) -> TransferState:
    """Start the transfer's workflow (or attach to it, on a retry) and wait for the hold decision.

    Update-with-start: one round trip starts the workflow and waits for `initiated`. The
    workflow id is derived from the transfer id, and an existing run is reused, so a retried
    request joins the transfer its first attempt started. A run that already closed is never
    restarted (REJECT_DUPLICATE): its final state is read instead.
    """
    workflow_id = workflow_id_for(request.transfer_id)
    start = WithStartWorkflowOperation(
        TransferWorkflow.run,
        request,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        memo=memo,
    )
    try:
        return await asyncio.wait_for(
            client.execute_update_with_start_workflow(
                # temporalio's stub wants the update's result type, not the coroutine an async
                # update method is typed as; the call is correct at runtime.
                TransferWorkflow.initiated,  # type: ignore[arg-type]
                start_workflow_operation=start,
            ),
            timeout=INITIATE_TIMEOUT_S,
        )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        # The second: the server's own wait for the update ran out (say, while it restarted).
        raise _timeout("initiation") from err
    except WorkflowAlreadyStartedError:
        return await query_state(client.get_workflow_handle(workflow_id))


async def query_state(handle: WorkflowHandle[TransferWorkflow, str]) -> TransferState:
    """The workflow's `state` query (works on a closed workflow too, by replay).

    Raises:
        Problem: 503 workflow_timeout when no worker answers in time.
        RPCError: the workflow does not exist.
    """
    try:
        return await asyncio.wait_for(handle.query(TransferWorkflow.state), timeout=SETTLE_TIMEOUT_S)
    except TimeoutError as err:
        raise _timeout("state query") from err


async def wait_for(
    handle: WorkflowHandle[TransferWorkflow, str],
    done: Callable[[TransferState], bool],
    *,
    timeout_s: float,
) -> TransferState | None:
    """Poll the state query until `done(state)`; the last state seen, or None if none."""
    deadline = time.monotonic() + timeout_s
    state: TransferState | None = None
    while True:
        state = await query_state(handle)
        if done(state) or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(POLL_S)


async def submit_otp(client: Client, engine: Engine, transfer_id: UUID, workflow_id: str, code: str) -> VerifyOtpResult:
    """Send one code and wait for its outcome (the workflow answers each submission id once).

    The code goes by signal, which is durable before the workflow acts on it; the
    `otp_outcome` update then waits for the answer in one round trip. No polling of the state
    query. When the workflow closed before the update reached it (an accepted code often posts
    and closes the workflow in the task that checked it), the check's own record answers
    (`otp_attempts`, by submission id): a state query of a closed workflow would replay its
    whole history on a worker.

    Raises:
        Problem: 409 otp_not_pending when the workflow has closed; 503 on timeout.
    """
    handle: WorkflowHandle[TransferWorkflow, str] = client.get_workflow_handle(workflow_id)
    submission = OtpSubmission(submission_id=str(uuid.uuid4()), code=code)
    try:
        await handle.signal(TransferWorkflow.submit_otp, submission)
    except RPCError as err:
        if _gone(err):
            raise not_pending("the transfer no longer waits for a code") from err
        raise
    try:
        return await asyncio.wait_for(
            # The stub wants the update's result type, not the coroutine (as in initiate).
            handle.execute_update(TransferWorkflow.otp_outcome, submission.submission_id),  # type: ignore[arg-type]
            timeout=OTP_OUTCOME_TIMEOUT_S,
        )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        # The second: the server's own wait for the update ran out (say, while it restarted).
        # The code was signalled, so it still takes effect; the caller may ask again.
        raise _timeout("OTP check") from err
    except (WorkflowUpdateFailedError, RPCError) as err:
        if isinstance(err, RPCError) and not _gone(err):
            raise
        # The workflow closed before the update reached it. Not checked: the workflow ended
        # first (expired, cancelled) or had taken another code.
        recorded = await run_in_threadpool(_recorded_outcome, engine, transfer_id, submission.submission_id)
        if recorded is not None:
            return recorded
        raise not_pending("the transfer no longer waits for a code") from err


def _recorded_outcome(engine: Engine, transfer_id: UUID, submission_id: str) -> VerifyOtpResult | None:
    with connection(engine) as conn:
        found = otp_store.recorded_outcome(conn, transfer_id=str(transfer_id), submission_id=submission_id)
    return None if found is None else VerifyOtpResult(outcome=found.outcome, attempts_left=found.attempts_left)


def not_pending(detail: str, **extra: Any) -> Problem:
    return Problem(409, "otp_not_pending", "OTP not pending", detail, **extra)


async def signal_and_wait(
    client: Client,
    workflow_id: str,
    *,
    signal: str,
    arg: object | None,
    leaves: str,
    timeout_s: float = OTP_OUTCOME_TIMEOUT_S,
) -> TransferState | None:
    """Signal the workflow, then wait until its status leaves `leaves`; None if it is gone."""
    handle: WorkflowHandle[TransferWorkflow, str] = client.get_workflow_handle(workflow_id)
    try:
        if arg is None:
            await handle.signal(signal)
        else:
            await handle.signal(signal, arg)
    except RPCError as err:
        if _gone(err):
            return None
        raise
    return await wait_for(handle, lambda s: s.status != leaves, timeout_s=timeout_s)


async def current_state(client: Client, workflow_id: str) -> TransferState | None:
    """The workflow's state, or None when there is no such workflow."""
    try:
        return await query_state(client.get_workflow_handle(workflow_id))
    except RPCError as err:
        if _gone(err):
            return None
        raise


def review_decision(approved: bool, staff_id: str, reason: str) -> ReviewDecision:
    return ReviewDecision(approved=approved, staff_id=staff_id, reason=reason)
