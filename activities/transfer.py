"""Transfer activities: thin adapters from the workflow to the ledger, the OTP store and FX.

Every activity is idempotent by the transfer id (or the OTP submission id), so Temporal may
retry it, or run it again after a worker crash, without a second effect. Domain errors become
non-retryable ApplicationErrors whose `type` is the contract's error code; anything else
(a database restart, a dropped connection) is left to the workflow's bounded retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.faults import crash_point
from contracts.transfer import (
    CloseInput,
    InitiateInput,
    InitiateResult,
    OtpCheckResult,
    PostInput,
    PostResult,
    Quote,
    QuoteInput,
    RiskDecisionInput,
    RiskVerdict,
    StatusInput,
    TransferRequest,
    VerifyOtpInput,
)
from fx.quotes import firm_quote
from fx.rates import RateProvider, UnsupportedPair
from ledger import account_numbers, payees, standing_orders
from ledger.db import Conn
from ledger.errors import LedgerError
from ledger.fx import FxQuote
from ledger.money import Money
from ledger.payees import ScaExemption
from ledger.service import Ledger
from ledger.states import OtpOutcome
from ledger.transfers import Transfer, TransferStatus
from ledger.uow import UnitOfWork
from otp import store as otp_store
from otp.codes import Binding
from otp.delivery import CODE_SLOT, OtpMessage, SealsText, request_otp_message
from risk import assess as risk_assess
from risk.limits import check_within_limits


@dataclass(frozen=True)
class TransferPolicy:
    """Per-deployment knobs the activities need (from settings)."""

    otp_key: bytes
    review_threshold_minor: dict[str, int]
    fx_quote_ttl_s: int
    # Seconds the workflow waits for the risk verdict after the code; 0: risk review off.
    risk_wait_s: int = 0


@contextmanager
def business_errors() -> Iterator[None]:
    """Domain errors end the transfer (non-retryable); infrastructure errors retry."""
    try:
        yield
    except LedgerError as err:
        # A refusal that names more than its code (limit_exceeded: which limit, what is left)
        # carries it as the error's details, for the API's problem document.
        details = getattr(err, "details", None)
        extra = (details,) if isinstance(details, dict) else ()
        raise ApplicationError(str(err), *extra, type=err.code, non_retryable=True) from err
    except UnsupportedPair as err:
        raise ApplicationError(str(err), type="quote_unavailable", non_retryable=True) from err


def binding_of(transfer: Transfer) -> Binding:
    return Binding(
        transfer_id=str(transfer.id),
        amount_minor=transfer.amount_minor,
        currency=transfer.currency,
        payee_account_id=str(transfer.destination_account_id),
    )


def otp_message(transfer: Transfer, payee_account_number: str, ttl_s: int) -> tuple[str, str]:
    """Subject and body of the OTP notification: amount, currency, the payee's account number
    and a slot for the code (otp.delivery seals the code; the inbox opens it into the slot for
    its owner)."""
    amount = Money(transfer.amount_minor, transfer.currency)
    payee = account_numbers.grouped(payee_account_number)
    subject = f"Approve your transfer of {amount}"
    body = (
        f"Your code to send {amount} to account {payee} is {CODE_SLOT}. "
        f"It expires in {ttl_s // 60} minutes and authorises only this transfer. "
        "Never share it with anyone."
    )
    return subject, body


class TransferActivities:
    def __init__(
        self,
        ledger: Ledger,
        rates: RateProvider,
        policy: TransferPolicy,
        sealer: SealsText,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._ledger = ledger
        self._sealer = sealer
        self._rates = rates
        self._policy = policy
        self._clock = clock or (lambda: datetime.now(UTC))

    @activity.defn(name="initiate_transfer")
    def initiate_transfer(self, request: InitiateInput) -> InitiateResult:
        """Validate, hold the funds, issue the OTP and queue its notification.

        Raises ApplicationError (non-retryable) typed insufficient_funds, account_frozen,
        account_closed, account_not_found, currency_mismatch, same_account, invalid_amount,
        quote_unavailable, limit_exceeded (details: limit, remaining_minor | remaining_count;
        checked in the hold's transaction, see risk.limits).
        """
        r = request.request
        transfer_id = UUID(r.transfer_id)
        try:
            with business_errors():
                self._check_standing_order(r)
                amount = Money.parse(r.amount_minor, r.currency)
                source = self._ledger.get_account(UUID(r.source_account_id))
                destination = self._ledger.get_account(UUID(r.destination_account_id))
                fx: FxQuote | None = None
                if source.currency != destination.currency and r.currency == destination.currency:
                    # Destination fixed: the hold needs an indicative source amount (firm at posting).
                    rate = self._rates.current(source.currency, destination.currency)
                    fx = FxQuote("indicative", source.currency, destination.currency, rate.rate, rate.spread_bps)
                transfer = self._ledger.create_transfer_with_hold(
                    transfer_id,
                    UUID(r.customer_id),
                    source.id,
                    destination.id,
                    amount,
                    description=r.description or None,
                    fx=fx,
                    workflow_id=request.workflow_id,
                    precheck=check_within_limits,
                )
        except ApplicationError as err:
            if r.standing_order_id:
                # A run refused before its hold (insufficient_funds, a frozen account) has no
                # transfer row: the run keeps the reason and the customer is told.
                with UnitOfWork(self._ledger.engine) as uow:
                    standing_orders.record_run_failure(
                        uow.conn,
                        order_id=UUID(r.standing_order_id),
                        scheduled_for=date.fromisoformat(r.scheduled_for),
                        reason=err.type or "refused",
                    )
                    uow.commit()
            raise
        now = self._clock()
        exemption = ""
        with UnitOfWork(self._ledger.engine) as uow:
            conn = uow.conn
            exemption = self._grant_exemption(conn, r, transfer)
            issued = None
            if not exemption:
                issued = otp_store.issue(
                    conn,
                    key=self._policy.otp_key,
                    binding=binding_of(transfer),
                    customer_id=r.customer_id,
                    now=now,
                    ttl_s=r.otp_ttl_s,
                    max_attempts=r.otp_max_attempts,
                )
                if issued.code is not None:
                    # Same transaction as the challenge: a code exists only if its message does.
                    # The code is sealed: the outbox, Kafka and the inbox never hold it in clear.
                    subject, body = otp_message(transfer, destination.account_number, r.otp_ttl_s)
                    message = OtpMessage(
                        customer_id=UUID(r.customer_id),
                        challenge_ref=r.transfer_id,
                        subject=subject,
                        body=body,
                        expires_at=issued.expires_at,
                        transfer_id=transfer_id,
                    )
                    request_otp_message(conn, self._sealer, message, issued.code, business_id=transfer_id)
            uow.commit()
        threshold = self._policy.review_threshold_minor.get(transfer.currency)
        return InitiateResult(
            source_currency=transfer.source_currency,
            destination_currency=transfer.destination_currency,
            otp_expires_at=issued.expires_at.isoformat() if issued is not None else "",
            attempts_left=issued.attempts_left if issued is not None else 0,
            review_required=threshold is not None and transfer.amount_minor >= threshold,
            risk_wait_s=self._policy.risk_wait_s,
            sca_exemption=exemption,
        )

    def _check_standing_order(self, r: TransferRequest) -> None:
        """A standing-order run must match an active order (raises standing_order_not_active)."""
        if r.sca_exemption != ScaExemption.RECURRING:
            return
        with UnitOfWork(self._ledger.engine) as uow:
            standing_orders.check_run_request(
                uow.conn,
                order_id=UUID(r.standing_order_id),
                customer_id=UUID(r.customer_id),
                source_account_id=UUID(r.source_account_id),
                destination_account_id=UUID(r.destination_account_id),
                amount_minor=r.amount_minor,
                currency=r.currency,
            )
            uow.commit()

    def _grant_exemption(self, conn: Conn, r: TransferRequest, transfer: Transfer) -> str:
        """The exemption this transfer gets, recorded with it; "" when it needs an OTP.

        Asked for "trusted_payee": granted only if the payee is still trusted, read under a
        share lock in this transaction (a deletion that committed first ends it at once; the
        transfer then waits for an OTP like any other). "recurring": the order was checked
        before the hold (see _check_standing_order).
        """
        if r.sca_exemption == ScaExemption.RECURRING:
            payees.record_exemption(
                conn,
                transfer_id=transfer.id,
                exemption=ScaExemption.RECURRING,
                payee_id=UUID(r.payee_id) if r.payee_id else None,
                standing_order_id=UUID(r.standing_order_id),
            )
            return ScaExemption.RECURRING.value
        if r.sca_exemption == ScaExemption.TRUSTED_PAYEE:
            payee = payees.trusted_for(
                conn,
                transfer.customer_id,
                transfer.destination_account_id,
                payee_id=UUID(r.payee_id) if r.payee_id else None,
            )
            if payee is not None:
                payees.record_exemption(
                    conn,
                    transfer_id=transfer.id,
                    exemption=ScaExemption.TRUSTED_PAYEE,
                    payee_id=payee.id,
                    standing_order_id=None,
                )
                return ScaExemption.TRUSTED_PAYEE.value
        return ""

    @activity.defn(name="verify_otp")
    def verify_otp(self, request: VerifyOtpInput) -> OtpCheckResult:
        """Check one submitted code (constant-time, single use, attempts counted once); an
        accepted code also brings the risk verdict recorded so far (see `_verdict_at_check`)."""
        with business_errors():
            transfer = self._ledger.get_transfer(UUID(request.transfer_id))
        risk: RiskVerdict | None = None
        with UnitOfWork(self._ledger.engine) as uow:
            result = otp_store.check(
                uow.conn,
                key=self._policy.otp_key,
                binding=binding_of(transfer),
                submission_id=request.submission_id,
                code=request.code,
                now=self._clock(),
            )
            if result.outcome == OtpOutcome.ACCEPTED:
                if not result.replayed:
                    # Approval and the status change commit together: a crash between them
                    # cannot leave an approved transfer looking as if it still waits for a code.
                    with business_errors():
                        uow.transfers.transition(transfer.id, TransferStatus(request.next_status))
                risk = self._verdict_at_check(uow, transfer.id)
            uow.commit()
        return OtpCheckResult(outcome=result.outcome, attempts_left=result.attempts_left, risk=risk)

    @activity.defn(name="set_transfer_status")
    def set_transfer_status(self, request: StatusInput) -> RiskVerdict | None:
        """Move the transfer (compare-and-set); with `with_risk`, return the risk verdict
        recorded so far (read after the move, in the same transaction)."""
        with business_errors(), UnitOfWork(self._ledger.engine) as uow:
            uow.transfers.transition(UUID(request.transfer_id), TransferStatus(request.status))
            risk = self._verdict_at_check(uow, UUID(request.transfer_id)) if request.with_risk else None
            uow.commit()
        return risk

    def _verdict_at_check(self, uow: UnitOfWork, transfer_id: UUID) -> RiskVerdict | None:
        """The verdict the risk consumer recorded, read after this transaction's UPDATE of the
        transfer's row: when the consumer saw the transfer in `pending_otp` it sent no signal,
        and this read is how the workflow learns it (risk.assess.leave_for_check)."""
        if self._policy.risk_wait_s <= 0:
            return None  # risk review off: the workflow waits for no verdict
        stored = risk_assess.verdict_at_check(uow.conn, transfer_id)
        return None if stored is None else RiskVerdict.of(stored)

    @activity.defn(name="fetch_fx_quote")
    def fetch_fx_quote(self, request: QuoteInput) -> Quote:
        """A firm quote, stored so the posting can cite it. Raises quote_unavailable."""
        with business_errors():
            quote = firm_quote(
                self._ledger.engine,
                self._rates,
                source=request.source_currency,
                destination=request.destination_currency,
                transfer_id=request.transfer_id,
                now=self._clock(),
                ttl_s=self._policy.fx_quote_ttl_s,
            )
        return Quote(
            quote_id=quote.quote_id,
            source_currency=quote.source_currency,
            destination_currency=quote.destination_currency,
            rate=str(quote.rate),
            spread_bps=quote.spread_bps,
            expires_at=quote.expires_at.isoformat(),
        )

    @activity.defn(name="post_transfer")
    def post_transfer(self, request: PostInput) -> PostResult:
        """Legs + projections + `transfer.posted` + status in one transaction, once per transfer."""
        fx = None
        if request.quote is not None:
            q = request.quote
            fx = FxQuote(q.quote_id, q.source_currency, q.destination_currency, Decimal(q.rate), q.spread_bps)
        with business_errors():
            posting = self._ledger.post_transfer(UUID(request.transfer_id), fx)
        crash_point("after_post_commit")
        t = posting.transfer
        return PostResult(
            transaction_id=str(posting.transaction_id),
            source_amount_minor=t.source_amount_minor,
            destination_amount_minor=t.destination_amount_minor or 0,
        )

    @activity.defn(name="record_risk_decision")
    def record_risk_decision(self, request: RiskDecisionInput) -> None:
        """Record the verdict the workflow acts on (and move to in_review with it, in one
        transaction). Idempotent: the first decision stays."""
        transfer_id = UUID(request.transfer_id)
        with business_errors(), UnitOfWork(self._ledger.engine) as uow:
            risk_assess.record_decision(uow.conn, transfer_id, request.verdict, list(request.reasons))
            if request.to_status is not None:
                uow.transfers.transition(transfer_id, TransferStatus(request.to_status))
            uow.commit()

    @activity.defn(name="close_transfer")
    def close_transfer(self, request: CloseInput) -> None:
        """Void the hold and record the final status (failed, cancelled, expired, rejected)."""
        with business_errors():
            self._ledger.void_transfer_hold(UUID(request.transfer_id), request.status, request.reason)
