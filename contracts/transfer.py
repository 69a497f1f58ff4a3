"""Inputs and results of the transfer activities: one frozen dataclass in, one out.

These types are the contract between `workflows/transfer.py` and `activities/transfer.py`;
they travel through Temporal's history, so they hold only plain values (ids as strings,
amounts as ints, rates as decimal strings, times as RFC 3339 strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger.states import TransferStatus

if TYPE_CHECKING:
    from risk.assess import StoredAssessment


@dataclass(frozen=True)
class TransferRequest:
    """What the API asks for: the workflow's input."""

    transfer_id: str
    customer_id: str
    source_account_id: str
    destination_account_id: str
    amount_minor: int
    currency: str
    description: str = ""
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    # The SCA exemption asked for: "" (an OTP), "trusted_payee" (with payee_id) or
    # "recurring" (a standing-order run, with standing_order_id and scheduled_for). The
    # initiation step checks it against the database before granting it. Defaults keep
    # histories recorded before these fields decoding.
    sca_exemption: str = ""
    payee_id: str = ""
    standing_order_id: str = ""
    scheduled_for: str = ""  # ISO date of a standing-order run


@dataclass(frozen=True)
class InitiateInput:
    request: TransferRequest
    workflow_id: str


@dataclass(frozen=True)
class InitiateResult:
    source_currency: str
    destination_currency: str
    otp_expires_at: str
    attempts_left: int
    review_required: bool
    # Seconds to wait for the risk verdict after the code (0: risk review off, or a history
    # recorded before it: such a result decodes without the field).
    risk_wait_s: int = 0
    # The exemption granted ("" when an OTP was issued and must be waited for).
    sca_exemption: str = ""


@dataclass(frozen=True)
class VerifyOtpInput:
    transfer_id: str
    # Keys the attempt, so a retried activity reports the first outcome instead of
    # counting the same wrong code twice.
    submission_id: str
    code: str
    # Where an accepted code moves the transfer, in the same transaction as the check:
    # `processing`, or `in_review` when the amount needs ops review.
    next_status: str = TransferStatus.PROCESSING


@dataclass(frozen=True)
class VerifyOtpResult:
    # accepted | invalid | locked | expired
    outcome: str
    attempts_left: int


@dataclass(frozen=True)
class OtpCheckResult:
    """What the `verify_otp` step returns to the workflow: the outcome the customer is told
    (VerifyOtpResult's fields), and, when the code was accepted, the transfer's risk verdict
    if the risk consumer had recorded it by then (risk.assess.leave_for_check: it then sends
    no signal). Histories recorded before this field carry no `risk`: None, the signal's path."""

    outcome: str
    attempts_left: int
    risk: RiskVerdict | None = None

    def answer(self) -> VerifyOtpResult:
        return VerifyOtpResult(self.outcome, self.attempts_left)


@dataclass(frozen=True)
class StatusInput:
    transfer_id: str
    status: str
    # Return the recorded risk verdict too: the exemption's step out of `pending_otp` reads it
    # as an accepted code does (risk.assess.leave_for_check); other moves do not need it.
    with_risk: bool = False


@dataclass(frozen=True)
class QuoteInput:
    transfer_id: str
    source_currency: str
    destination_currency: str


@dataclass(frozen=True)
class Quote:
    quote_id: str
    source_currency: str
    destination_currency: str
    rate: str
    spread_bps: int
    expires_at: str


@dataclass(frozen=True)
class PostInput:
    transfer_id: str
    quote: Quote | None = None


@dataclass(frozen=True)
class PostResult:
    transaction_id: str
    source_amount_minor: int
    destination_amount_minor: int


@dataclass(frozen=True)
class CloseInput:
    """End a transfer that will not post: void its hold and record the final status."""

    transfer_id: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class OtpSubmission:
    submission_id: str
    code: str
    # Where an accepted code moves the transfer, in the same transaction as the check:
    # `processing`, or `in_review` when the amount needs ops review.
    next_status: str = TransferStatus.PROCESSING


@dataclass(frozen=True)
class ReviewDecision:
    approved: bool
    staff_id: str
    reason: str = ""


@dataclass(frozen=True)
class RiskVerdict:
    """The `risk_verdict` signal: the risk consumer's assessment of this transfer.

    Keyed by `event_id` (the `transfer.initiated` event it judged): the workflow takes the
    first verdict and ignores any other, so a redelivered event changes nothing.
    """

    event_id: str
    verdict: str  # allow | review | block
    reasons: list[str] = field(default_factory=list)
    assessed_at: str = ""

    @classmethod
    def of(cls, stored: StoredAssessment) -> RiskVerdict:
        """The verdict as the risk consumer recorded it (its signal, or the code check's read)."""
        return cls(
            event_id=str(stored.event_id),
            verdict=stored.verdict,
            reasons=list(stored.reasons),
            assessed_at=stored.assessed_at.isoformat(),
        )


@dataclass(frozen=True)
class RiskDecisionInput:
    """Record what the workflow does about a verdict; `to_status` in_review moves it there
    in the same transaction."""

    transfer_id: str
    verdict: str
    reasons: list[str]
    to_status: str | None = None


@dataclass(frozen=True)
class TimelineEvent:
    at: str
    event: str
    detail: str = ""


@dataclass
class TransferState:
    """What the `state` query returns."""

    transfer_id: str
    status: str
    attempts_left: int
    otp_expires_at: str | None
    failure_reason: str | None
    timeline: list[TimelineEvent] = field(default_factory=list)
    otp_outcomes: dict[str, VerifyOtpResult] = field(default_factory=dict)
    # What a refusal at initiation named besides its code (limit_exceeded: the limit and
    # what is left), for the API's problem document.
    refusal: dict[str, Any] | None = None
