"""Every state string Ledgerflow stores, sends or branches on, as one enum each.

One place for statuses, outcomes, verdicts, topics and event types: the workflow, the
activities, the API, the portals and the relay import them from here instead of spelling the
strings, and tests/ledger/test_states.py checks each enum against the database (its ENUM type
or CHECK constraint) and the topics against the relay's topic list, so a value added on one
side and not the other fails a test instead of a transfer.

StrEnum members are `str`s: they compare equal to the spelled string, format as their value
and serialise as it (JSON, Temporal payloads, SQL parameters), so histories and rows written
before this module existed read back unchanged. The API's pydantic schemas keep their
`Literal[...]` types (the OpenAPI document must not change); the test checks those too.
"""

from __future__ import annotations

from enum import StrEnum


class TransferStatus(StrEnum):
    """`transfers.status` (SQL type ledger_transfer_status); the graph is in ledger.transfers."""

    PENDING_OTP = "pending_otp"
    PROCESSING = "processing"
    IN_REVIEW = "in_review"
    POSTED = "posted"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REVERSED = "reversed"


# A workflow's status before its initiation step answered; never stored in the database.
INITIATING = "initiating"


class HoldState(StrEnum):
    """`holds.state` (SQL type ledger_hold_state)."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class AccountKind(StrEnum):
    """`accounts.kind` (SQL type ledger_account_kind)."""

    CUSTOMER = "customer"
    SETTLEMENT = "settlement"  # money from outside: debited by deposits
    FX_LIQUIDITY = "fx_liquidity"  # FX legs pass through it
    FX_REVENUE = "fx_revenue"  # the spread


class AccountStatus(StrEnum):
    """`accounts.status` (SQL type ledger_account_status)."""

    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class TransactionKind(StrEnum):
    """`ledger_transactions.kind` (SQL type ledger_transaction_kind)."""

    DEPOSIT = "deposit"
    TRANSFER = "transfer"
    FX_TRANSFER = "fx_transfer"
    REVERSAL = "reversal"
    HOLD_POSTING = "hold_posting"
    ADJUSTMENT = "adjustment"


class Topic(StrEnum):
    """`outbox.topic` (SQL type ledger_topic) and the Kafka topics relay/topics.py creates."""

    TRANSFERS = "ledgerflow.transfers"
    ACCOUNTS = "ledgerflow.accounts"
    NOTIFICATIONS = "ledgerflow.notifications"
    OPS = "ledgerflow.ops"
    RISK = "ledgerflow.risk"


class EventType(StrEnum):
    """The CloudEvents `type` of every event (docs/api.md "Events on Kafka")."""

    TRANSFER_INITIATED = "transfer.initiated"
    TRANSFER_POSTED = "transfer.posted"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_CANCELLED = "transfer.cancelled"
    TRANSFER_EXPIRED = "transfer.expired"
    TRANSFER_REJECTED = "transfer.rejected"
    TRANSFER_REVERSED = "transfer.reversed"
    ACCOUNT_OPENED = "account.opened"
    ACCOUNT_DEPOSITED = "account.deposited"
    ACCOUNT_STATUS_CHANGED = "account.status_changed"
    NOTIFICATION_REQUESTED = "notification.requested"
    RECONCILIATION_FAILED = "reconciliation.failed"
    RISK_ASSESSED = "risk.assessed"


class OtpChallengeState(StrEnum):
    """`otp_challenges.state` (CHECK)."""

    PENDING = "pending"
    USED = "used"
    LOCKED = "locked"
    EXPIRED = "expired"


class OtpOutcome(StrEnum):
    """What a submitted code came to (`otp_attempts.outcome`, the `verify_otp` activity's result,
    the API's OTP answers)."""

    ACCEPTED = "accepted"
    INVALID = "invalid"
    LOCKED = "locked"
    EXPIRED = "expired"
    THROTTLED = "throttled"
    NOT_PENDING = "not_pending"
    # The workflow's answer to codes queued behind the accepted one (never stored).
    ALREADY_APPROVED = "already_approved"


class Verdict(StrEnum):
    """A risk verdict (`risk_assessments.verdict`, `risk_decisions.verdict`, the workflow's signal)."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class RiskAction(StrEnum):
    """What a matching risk rule asks for (`risk_rules.action`)."""

    REVIEW = "review"
    BLOCK = "block"


class PayeeStatus(StrEnum):
    """`payees.status` (CHECK)."""

    PENDING_OTP = "pending_otp"
    TRUSTED = "trusted"
    DELETED = "deleted"


class ScaExemption(StrEnum):
    """`transfer_sca.sca_exemption` (CHECK)."""

    TRUSTED_PAYEE = "trusted_payee"  # RTS Art. 13
    RECURRING = "recurring"  # RTS Art. 14: a standing order's run


class StandingOrderStatus(StrEnum):
    """`standing_orders.status` (CHECK)."""

    PENDING_OTP = "pending_otp"
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class Frequency(StrEnum):
    """`standing_orders.frequency` (CHECK)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class StandingOrderRunStatus(StrEnum):
    """`standing_order_runs.status` (CHECK)."""

    STARTED = "started"
    FAILED = "failed"


class ReversalStatus(StrEnum):
    """`reversals.status` (CHECK): four eyes."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReconRunStatus(StrEnum):
    """`reconciliation_runs.status` (CHECK)."""

    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


class AuditOutcome(StrEnum):
    """`audit_log.outcome` (CHECK)."""

    OK = "ok"
    DENIED = "denied"


class StaffRole(StrEnum):
    """`staff.role` (CHECK)."""

    OPERATOR = "operator"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"
