"""Inputs and results of the reconciliation workflow and its activities: one frozen dataclass in,
one out. They travel through Temporal's history, so they hold only plain JSON values (ids as
strings, amounts as ints, times as RFC 3339 strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# The checks of one run, in the order they are shown. Each is one activity named
# `recon_check_<name>`.
CHECK_NAMES: Final = (
    "trial_balance",
    "projections",
    "holds",
    "outbox_published",
    "consumer_counts",
    "stuck_transfers",
)


@dataclass(frozen=True)
class ReconciliationPolicy:
    """Thresholds of one run. Grace periods keep a healthy system's normal lag (the relay's
    backlog, a consumer catching up, a transfer between two steps) from reading as an error."""

    # an outbox row younger than this may still be waiting for the relay
    publish_grace_s: int = 60
    # a published row younger than this may not have reached every consumer yet
    consumer_grace_s: int = 60
    # a pending hold this long past its deadline should have been expired by the sweeper
    hold_expiry_grace_s: int = 60
    # pending_otp is overdue after the OTP TTL plus this margin
    otp_ttl_s: int = 300
    pending_otp_margin_s: int = 120
    # processing normally lasts well under a second; minutes mean retries are failing
    processing_stuck_s: int = 300
    # a non-terminal transfer younger than this is not examined (its workflow may be starting)
    workflow_grace_s: int = 60
    # offending rows listed per finding (the counts are always exact)
    max_rows: int = 100


@dataclass(frozen=True)
class RunInput:
    """Input of ReconciliationWorkflow (workflow id `reconciliation-<run_id>`)."""

    run_id: str
    trigger: str = "api"  # api | schedule
    requested_by: str | None = None  # staff id for runs started from the API
    policy: ReconciliationPolicy = field(default_factory=ReconciliationPolicy)


@dataclass(frozen=True)
class BeginRunInput:
    run_id: str
    trigger: str
    requested_by: str | None
    workflow_id: str


@dataclass(frozen=True)
class CheckInput:
    run_id: str
    policy: ReconciliationPolicy


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; `details` names the offending rows when `ok` is false."""

    name: str
    ok: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class FinishRunInput:
    run_id: str
    checks: list[CheckResult]


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str  # passed | failed
    failed_checks: list[str]
    alert: dict[str, Any] | None
