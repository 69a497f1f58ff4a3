"""The transfer workflow: hold, OTP, review, FX quote, idempotent posting.

Deterministic by construction: no I/O, no wall clock (only `workflow.now()`), no random ids.
Every decision that needs the database (is the code right? is the quote firm?) is made in an
activity. The workflow id is `transfer-<transfer id>`, and every activity is keyed on the
transfer id, never on the run id, so a reset or a retried activity cannot post twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as StepTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.transfer import TransferActivities
    from contracts.transfer import (
        CloseInput,
        InitiateInput,
        InitiateResult,
        OtpSubmission,
        PostInput,
        Quote,
        QuoteInput,
        ReviewDecision,
        RiskDecisionInput,
        RiskVerdict,
        StatusInput,
        TimelineEvent,
        TransferRequest,
        TransferState,
        VerifyOtpInput,
        VerifyOtpResult,
    )
    from ledger.states import INITIATING, OtpOutcome, Verdict
    from ledger.states import TransferStatus as S

TRANSFER_STATUS = SearchAttributeKey.for_keyword("TransferStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
SOURCE_CURRENCY = SearchAttributeKey.for_keyword("SourceCurrency")
DESTINATION_CURRENCY = SearchAttributeKey.for_keyword("DestinationCurrency")
RISK_VERDICT = SearchAttributeKey.for_keyword("RiskVerdict")

# Infrastructure failures (database restarts, worker crashes) retry with backoff, bounded so a
# transfer never retries forever; business failures are non-retryable ApplicationErrors.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=30,
)
DB_TIMEOUT = timedelta(seconds=15)
QUOTE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)

# Since this patch every step runs as a local activity: each is one short PostgreSQL
# transaction, idempotent by the transfer id (or the OTP submission id), so running it inside
# the workflow task is safe (a worker that dies mid-task leaves the task to time out; the step
# runs again on replay and the ledger answers "already done"). It saves the server a task
# round trip per step, and the server's task throughput is what bounds transfers on a small
# machine. The result is stored in a marker, encrypted by the payload codec like any other
# payload. Histories recorded before the patch replay through the regular-activity path.
LOCAL_STEPS_PATCH = "local-db-steps"

# Since this patch a transfer waits for its risk verdict (the `risk_verdict` signal) after the
# code and before it posts; see _risk_gate. Histories recorded before it never wait.
RISK_PATCH = "risk-verdict"
RISK_UNAVAILABLE = "risk_unavailable"
# Transfers to a trusted payee, and standing-order runs, skip the OTP (see `_run`).
SCA_EXEMPTION_PATCH = "sca-exemption"

A = TypeVar("A")
R = TypeVar("R")

# How a step's final failure reaches the workflow: a regular activity's as ActivityError with
# the activity's error as its cause, a local activity's as the activity's error itself.
STEP_FAILURES = (ActivityError, ApplicationError, StepTimeoutError)


def workflow_id_for(transfer_id: str) -> str:
    return f"transfer-{transfer_id}"


def business_error(err: BaseException) -> ApplicationError | None:
    """The non-retryable application error of a step's failure (see STEP_FAILURES), if it was one."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return cause
    return None


@workflow.defn(name="Transfer")
class TransferWorkflow:
    def __init__(self) -> None:
        self._request: TransferRequest | None = None
        self._status: str = INITIATING
        self._attempts_left = 0
        self._otp_expires_at: str | None = None
        self._failure_reason: str | None = None
        self._initiated: InitiateResult | None = None
        self._initiation_error: ApplicationError | None = None
        self._submissions: list[OtpSubmission] = []
        self._otp_outcomes: dict[str, VerifyOtpResult] = {}
        self._cancel_requested = False
        self._review: ReviewDecision | None = None
        self._timeline: list[TimelineEvent] = []
        self._local_steps = False
        self._risk: RiskVerdict | None = None
        self._risk_settled = False
        self._risk_patch = False
        # Search attribute updates not yet sent (see _attributes).
        self._pending_attributes: dict[str, SearchAttributeUpdate[str]] = {}

    # -- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: TransferRequest) -> str:
        # Decided once, before the first step, so a history is all one way or all the other.
        self._local_steps = workflow.patched(LOCAL_STEPS_PATCH)
        # Likewise decided at the start (a patch marker between local-activity markers
        # would be matched out of order on replay).
        self._risk_patch = workflow.patched(RISK_PATCH)
        status = await self._run(request)
        self._flush_attributes()
        # An early end (say, insufficient funds) can finish within the first workflow task:
        # let the `initiated` update answer before the workflow closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status

    async def _run(self, request: TransferRequest) -> str:
        self._request = request
        self._attempts_left = request.otp_max_attempts
        self._attributes(TRANSFER_STATUS.value_set(self._status), CUSTOMER_ID.value_set(request.customer_id))
        try:
            initiated = await self._step(
                TransferActivities.initiate_transfer,
                InitiateInput(request=request, workflow_id=workflow.info().workflow_id),
            )
        except STEP_FAILURES as err:
            app = business_error(err)
            if app is None:
                raise
            # Nothing was held: the ledger refused the transfer before placing the hold.
            self._initiation_error = app
            self._failure_reason = app.type
            self._set_status(S.FAILED, app.type or "")
            return self._status

        self._initiated = initiated
        # What staff see at a glance in the Web UI (payloads are encoded like any other).
        workflow.upsert_memo(
            {
                "transfer_id": request.transfer_id,
                "customer_id": request.customer_id,
                "amount": f"{request.amount_minor} {request.currency} (minor units)",
                "route": f"{initiated.source_currency} -> {initiated.destination_currency}",
                "review_required": initiated.review_required,
            }
        )
        self._upsert_currency_attributes(initiated)
        # Only a history whose initiation granted an exemption asks for the patch, so older
        # histories (which never carry one) replay unchanged.
        if initiated.sca_exemption and workflow.patched(SCA_EXEMPTION_PATCH):
            # No code to wait for (PSD2 RTS Art. 13/14): straight to where an accepted code
            # would have moved it. Limits, review and risk still apply after this point.
            self._record("sca_exempt", initiated.sca_exemption)
            self._take_risk(
                await self._step(
                    TransferActivities.set_transfer_status,
                    StatusInput(
                        transfer_id=request.transfer_id,
                        status=S.IN_REVIEW if initiated.review_required else S.PROCESSING,
                        with_risk=True,
                    ),
                )
            )
        else:
            self._otp_expires_at = initiated.otp_expires_at
            self._attempts_left = initiated.attempts_left
            self._set_status(S.PENDING_OTP)

            outcome = await self._await_otp(request, initiated)
            if outcome is not None:
                return await self._close(outcome[0], outcome[1])

        # The accepting OTP check (or the exemption step) already moved the transfer to
        # in_review or processing. Then the risk verdict, OTP or not (an exempt transfer's wait
        # starts here, right after initiation).
        risk_review = False
        if initiated.risk_wait_s > 0 and self._risk_patch:
            verdict = await self._risk_gate(request, initiated)
            if verdict == Verdict.BLOCK:
                return await self._close(S.FAILED, "risk_blocked")
            risk_review = verdict == Verdict.REVIEW
        if initiated.review_required or risk_review:
            self._set_status(S.IN_REVIEW)
            self._flush_attributes()
            await workflow.wait_condition(lambda: self._review is not None)
            assert self._review is not None
            if not self._review.approved:
                return await self._close(S.REJECTED, self._review.reason or "rejected")
            self._record("review_approved", self._review.staff_id)
            await self._mark(S.PROCESSING)
        else:
            self._set_status(S.PROCESSING)
        quote: Quote | None = None
        if initiated.source_currency != initiated.destination_currency:
            try:
                quote = await self._firm_quote(request, initiated)
            except STEP_FAILURES:
                # The quote retry policy is short and bounded: after it, there is no quote.
                return await self._close(S.FAILED, "quote_unavailable")

        try:
            posted = await self._step(
                TransferActivities.post_transfer, PostInput(transfer_id=request.transfer_id, quote=quote)
            )
        except STEP_FAILURES as err:
            app = business_error(err)
            if app is None:
                raise
            return await self._close(S.FAILED, app.type or "posting_refused")
        self._set_status(S.POSTED, posted.transaction_id)
        return self._status

    async def _await_otp(self, request: TransferRequest, initiated: InitiateResult) -> tuple[str, str] | None:
        """Wait for a valid code; returns (final status, reason) if the transfer must end instead."""
        expires_at = datetime.fromisoformat(initiated.otp_expires_at)
        while True:
            remaining = (expires_at - workflow.now()).total_seconds()
            if remaining <= 0:
                return (S.EXPIRED, "otp_expired")
            self._flush_attributes()
            try:
                await workflow.wait_condition(
                    lambda: bool(self._submissions) or self._cancel_requested,
                    timeout=timedelta(seconds=remaining),
                    timeout_summary="otp-ttl",
                )
            except TimeoutError:
                return (S.EXPIRED, "otp_expired")
            if self._cancel_requested:
                return (S.CANCELLED, "cancelled_by_customer")
            submission = self._submissions.pop(0)
            result = await self._step(
                TransferActivities.verify_otp,
                VerifyOtpInput(
                    transfer_id=request.transfer_id,
                    submission_id=submission.submission_id,
                    code=submission.code,
                    next_status=S.IN_REVIEW if initiated.review_required else S.PROCESSING,
                ),
            )
            self._otp_outcomes[submission.submission_id] = result.answer()
            self._attempts_left = result.attempts_left
            self._record(f"otp_{result.outcome}", f"attempts_left={result.attempts_left}")
            if result.outcome == OtpOutcome.ACCEPTED:
                self._take_risk(result.risk)
                # Codes queued behind the accepted one are answered, not silently dropped.
                for late in self._submissions:
                    self._otp_outcomes[late.submission_id] = VerifyOtpResult(
                        OtpOutcome.ALREADY_APPROVED, result.attempts_left
                    )
                self._submissions.clear()
                return None
            if result.outcome == OtpOutcome.LOCKED:
                return (S.FAILED, "otp_locked")
            if result.outcome == OtpOutcome.EXPIRED:
                return (S.EXPIRED, "otp_expired")

    async def _risk_gate(self, request: TransferRequest, initiated: InitiateResult) -> str:
        """Wait for the risk verdict (at most `risk_wait_s` from now, the code just taken) and
        record it unless it is `allow`; no verdict in time is a review for `risk_unavailable`
        (fail closed). Returns the verdict acted on. A verdict arriving later changes nothing."""
        # Where the accepting check put the transfer; it rests there while it waits.
        self._set_status(S.IN_REVIEW if initiated.review_required else S.PROCESSING)
        if self._risk is None:
            self._flush_attributes()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._risk is not None,
                    timeout=timedelta(seconds=initiated.risk_wait_s),
                    timeout_summary="risk-verdict",
                )
        self._risk_settled = True
        risk = self._risk or RiskVerdict(event_id="", verdict=Verdict.REVIEW, reasons=[RISK_UNAVAILABLE])
        self._record(f"risk_{risk.verdict}", ",".join(risk.reasons))
        self._attributes(RISK_VERDICT.value_set(risk.verdict if self._risk is not None else "unavailable"))
        if risk.verdict == Verdict.ALLOW:
            return Verdict.ALLOW
        verdict = Verdict.BLOCK if risk.verdict == Verdict.BLOCK else Verdict.REVIEW
        # Blocked: the hold is voided by _close. Reviewed: to in_review, unless the amount
        # already put it there.
        to_status = S.IN_REVIEW if verdict == Verdict.REVIEW and not initiated.review_required else None
        await self._step(
            TransferActivities.record_risk_decision,
            RiskDecisionInput(
                transfer_id=request.transfer_id, verdict=verdict, reasons=list(risk.reasons), to_status=to_status
            ),
        )
        return verdict

    async def _firm_quote(self, request: TransferRequest, initiated: InitiateResult) -> Quote:
        quote_input = QuoteInput(
            transfer_id=request.transfer_id,
            source_currency=initiated.source_currency,
            destination_currency=initiated.destination_currency,
        )
        quote = await self._step(TransferActivities.fetch_fx_quote, quote_input, retry_policy=QUOTE_RETRY)
        # A quote that expired while we waited is not firm any more: fetch a new one.
        if datetime.fromisoformat(quote.expires_at) <= workflow.now():
            self._record("fx_quote_expired", quote.quote_id)
            quote = await self._step(TransferActivities.fetch_fx_quote, quote_input, retry_policy=QUOTE_RETRY)
        self._record("fx_quoted", f"{quote.quote_id} rate={quote.rate}")
        return quote

    async def _mark(self, status: str) -> None:
        assert self._request is not None
        await self._step(
            TransferActivities.set_transfer_status, StatusInput(transfer_id=self._request.transfer_id, status=status)
        )
        self._set_status(status)

    async def _close(self, status: str, reason: str) -> str:
        """Void the hold and record the final status; every non-posted end comes here."""
        assert self._request is not None
        await self._step(
            TransferActivities.close_transfer,
            CloseInput(transfer_id=self._request.transfer_id, status=status, reason=reason),
        )
        if status != S.CANCELLED:
            self._failure_reason = reason
        self._set_status(status, reason)
        return self._status

    async def _step(
        self, activity: Callable[[TransferActivities, A], R], arg: A, *, retry_policy: RetryPolicy = DB_RETRY
    ) -> R:
        """Run one database step, as a local activity since LOCAL_STEPS_PATCH (see there).

        `activity` is the method itself (TransferActivities.post_transfer): Temporal takes the
        activity type from its `@activity.defn(name=...)` (the names recorded histories carry)
        and the result type from its annotation, so neither is spelled here.
        """
        if self._local_steps:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=retry_policy
            )
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=retry_policy
        )

    # -- signals, updates, queries --------------------------------------------------------

    @workflow.signal(name="submit_otp")
    def submit_otp(self, submission: OtpSubmission) -> None:
        if self._status in (INITIATING, S.PENDING_OTP) and submission.submission_id not in self._otp_outcomes:
            self._submissions.append(submission)
        elif submission.submission_id not in self._otp_outcomes:
            self._otp_outcomes[submission.submission_id] = VerifyOtpResult(OtpOutcome.NOT_PENDING, self._attempts_left)

    @workflow.update(name="otp_outcome")
    async def otp_outcome(self, submission_id: str) -> VerifyOtpResult:
        """Wait for the outcome of a code sent with the `submit_otp` signal, and return it.

        The code itself must travel by signal: a signal is in the history before the workflow
        acts on it, while an update is durable only once a workflow task has accepted it. An
        update that carried the code could start the check (a local activity that commits)
        in a task that never completes, and then be lost with the server's memory of it: the
        code spent, the workflow none the wiser. This update only waits; if it is lost, the
        caller times out and the signal still takes effect.
        """
        await workflow.wait_condition(lambda: submission_id in self._otp_outcomes)
        return self._otp_outcomes[submission_id]

    @workflow.signal(name="risk_verdict")
    def risk_verdict(self, verdict: RiskVerdict) -> None:
        self._take_risk(verdict)

    def _take_risk(self, verdict: RiskVerdict | None) -> None:
        """A verdict by signal, or read by the step that took the transfer out of `pending_otp`
        (the risk consumer sends no signal while the transfer waits for its code: see
        risk.assess.leave_for_check). The first verdict only, and only while the transfer can
        still act on it."""
        if verdict is not None and self._risk is None and not self._risk_settled:
            self._risk = verdict

    @workflow.signal(name="cancel")
    def cancel(self) -> None:
        if self._status in (INITIATING, S.PENDING_OTP):
            self._cancel_requested = True

    @workflow.signal(name="review")
    def review(self, decision: ReviewDecision) -> None:
        if self._status == S.IN_REVIEW and self._review is None:
            self._review = decision

    @workflow.update(name="initiated")
    async def initiated(self) -> TransferState:
        """Returns once the hold decision is known (used by the API with update-with-start)."""
        await workflow.wait_condition(lambda: self._status != INITIATING)
        return self.state()

    @workflow.query(name="state")
    def state(self) -> TransferState:
        return TransferState(
            transfer_id=self._request.transfer_id if self._request else "",
            status=self._status,
            attempts_left=self._attempts_left,
            otp_expires_at=self._otp_expires_at,
            failure_reason=self._failure_reason,
            timeline=list(self._timeline),
            otp_outcomes=dict(self._otp_outcomes),
            refusal=self._refusal(),
        )

    def _refusal(self) -> dict[str, Any] | None:
        """The details of the initiation's refusal, when it named any (a query: no commands)."""
        err = self._initiation_error
        if err is None or not err.details or not isinstance(err.details[0], dict):
            return None
        return dict(err.details[0])

    # -- bookkeeping ----------------------------------------------------------------------

    def _record(self, event: str, detail: str = "") -> None:
        self._timeline.append(TimelineEvent(at=workflow.now().isoformat(), event=event, detail=detail))

    def _set_status(self, status: str, detail: str = "") -> None:
        self._status = status
        self._record(status, detail)
        self._attributes(TRANSFER_STATUS.value_set(status))

    def _upsert_currency_attributes(self, initiated: InitiateResult) -> None:
        self._attributes(
            SOURCE_CURRENCY.value_set(initiated.source_currency),
            DESTINATION_CURRENCY.value_set(initiated.destination_currency),
        )

    def _attributes(self, *updates: SearchAttributeUpdate[str]) -> None:
        """Set search attributes: at once before LOCAL_STEPS_PATCH, else at the next resting point.

        Each upsert is a history event and a visibility write on the server. Since the patch
        they are sent together where the transfer comes to rest (waiting for a code or a
        review, or closed), so the Web UI sees every state a transfer stays in, and the
        passing ones (`initiating`, `processing` for the milliseconds its local activities
        take) cost nothing.
        """
        if not self._local_steps:
            workflow.upsert_search_attributes(list(updates))
            return
        for update in updates:
            self._pending_attributes[update.key.name] = update

    def _flush_attributes(self) -> None:
        if self._pending_attributes:
            workflow.upsert_search_attributes(list(self._pending_attributes.values()))
            self._pending_attributes.clear()
