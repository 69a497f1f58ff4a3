"""The alarm of a failed reconciliation run: the `reconciliation.failed` CloudEvent.

It goes to the outbox (topic `ledgerflow.ops`, key = the run id) in the transaction that
records the failed run, so a failed run without its event, or an event without its run,
cannot exist. Its id derives from the run id (ledger.ids.event_id), so a retried finish
writes nothing new.

`data` is meant for whoever is paged: the failed checks, one short line each, and where to
look. It carries counts and currencies, never account or customer ids (those stay behind the
staff API, at `run_path`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ledger.outbox import OutboxEvent, make_event
from recon.io import CheckResult

EVENT_TYPE: Final = "reconciliation.failed"
# The recon layer writes this event, not the ledger's posting functions.
SOURCE: Final = "/ledgerflow/recon"
# A summary is one line of a page or a chat message, not a report.
MAX_SUMMARY_CHARS: Final = 200


def run_path(run_id: UUID | str) -> str:
    """The run in the staff API (docs/api.md: GET /ops/v1/reconciliation/runs/{id})."""
    return f"/ops/v1/reconciliation/runs/{run_id}"


def _count(value: Any) -> int:
    """A finding's size: its `count` when it has one, else the length of its row list."""
    if isinstance(value, Mapping):
        count = value.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else 0
    if isinstance(value, list):
        return len(value)
    return 0


def _findings(details: Mapping[str, Any], names: Sequence[str]) -> str:
    """`name N, other M` for the findings of `names` that are not empty."""
    return ", ".join(f"{name} {_count(details.get(name))}" for name in names if _count(details.get(name)))


def _trial_balance(details: Mapping[str, Any]) -> str:
    currencies = [str(u.get("currency")) for u in details.get("unbalanced", []) if isinstance(u, Mapping)]
    return "debits, credits or projections do not net to zero in " + (", ".join(currencies) or "some currency")


def _total(details: Mapping[str, Any], count_key: str, rows_key: str) -> int:
    """The exact count the check gave, or the length of its (capped) row list."""
    count = details.get(count_key)
    return count if isinstance(count, int) and not isinstance(count, bool) else _count(details.get(rows_key))


def _projections(details: Mapping[str, Any]) -> str:
    count = _total(details, "mismatched_count", "accounts")
    return f"{count} account(s) whose projection differs from the sum of its entries"


def _holds(details: Mapping[str, Any]) -> str:
    names = [name for name, value in details.items() if isinstance(value, Mapping)]
    return "hold findings: " + (_findings(details, names) or "see the run")


def _outbox(details: Mapping[str, Any]) -> str:
    found = _findings(details, ("event_count_wrong", "event_without_posting", "unpublished"))
    return "outbox findings: " + (found or "see the run")


def _consumers(details: Mapping[str, Any]) -> str:
    found = _findings(details, ("counter_mismatch", "applied_unknown_event", "missing"))
    return "consumer findings: " + (found or "see the run")


def _stuck(details: Mapping[str, Any]) -> str:
    return f"{_total(details, 'stuck_count', 'stuck')} non-terminal transfer(s) whose workflow is not running"


_SUMMARIES: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "trial_balance": _trial_balance,
    "projections": _projections,
    "holds": _holds,
    "outbox_published": _outbox,
    "consumer_counts": _consumers,
    "stuck_transfers": _stuck,
}


def summarize(check: CheckResult) -> str:
    """One short line saying what a failed check found (its details hold the rows)."""
    details = check.details if isinstance(check.details, Mapping) else {}
    if "error" in details:
        # The workflow records a check whose activity gave up as failed, with the error.
        text = f"could not run: {details['error']}"
    else:
        summary = _SUMMARIES.get(check.name)
        try:
            text = summary(details) if summary is not None else "failed; see the run"
        except (AttributeError, TypeError, ValueError):
            # Details of an unexpected shape must not stop the alarm: it still names the check.
            text = "failed; see the run"
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


def failed_run_event(run_id: UUID, checks: Sequence[CheckResult], *, workflow_id: str, at: datetime) -> OutboxEvent:
    """The `reconciliation.failed` event of a run whose `checks` include failed ones; `at` is
    when the run was recorded as failed (the envelope's time)."""
    failed = [c for c in checks if not c.ok]
    return make_event(
        EVENT_TYPE,
        business_id=run_id,
        key=run_id,
        data={
            "run_id": run_id,
            "failed_checks": [c.name for c in failed],
            "summaries": {c.name: summarize(c) for c in failed},
            "run_path": run_path(run_id),
            "workflow_id": workflow_id,
        },
        time=at,
        source=SOURCE,
    )
