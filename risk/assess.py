"""Fraud assessments in PostgreSQL: the rules as stored, the facts a transfer is judged on,
the assessment (idempotent by the `transfer.initiated` event id) with its `risk.assessed`
outbox event, and the bookkeeping of delivering the verdict to the transfer's workflow.

Everything here runs on a caller's connection, inside the caller's transaction (the risk
consumer's, the API's): an assessment, its event and its dedup row commit together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.db import Conn
from ledger.ids import event_id
from ledger.outbox import insert_event, make_event
from risk.rules import Facts, Rule, UnknownRule, assess, validate_params

SOURCE = "/ledgerflow/risk"


@dataclass(frozen=True, slots=True)
class StoredRule:
    rule: Rule
    version: int
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class InitiatedTransfer:
    """What a `transfer.initiated` event says about the transfer (the facts' starting point)."""

    event_id: UUID
    transfer_id: UUID
    customer_id: UUID
    source_account_id: UUID
    destination_account_id: UUID
    amount_minor: int  # what leaves the source
    currency: str  # the source currency
    workflow_id: str
    initiated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredAssessment:
    transfer_id: UUID
    event_id: UUID
    workflow_id: str
    verdict: str
    reasons: list[str]
    initiated_at: datetime
    assessed_at: datetime


def _rule(row: tuple[Any, ...]) -> StoredRule:
    params = row[3] if isinstance(row[3], dict) else json.loads(row[3])
    return StoredRule(Rule(row[0], bool(row[1]), row[2], params), int(row[4]), row[5], row[6])


_RULE_COLUMNS = "name, enabled, action, params, version, updated_at, updated_by"


def list_rules(conn: Conn) -> list[StoredRule]:
    return [_rule(r) for r in conn.execute(f"SELECT {_RULE_COLUMNS} FROM risk_rules ORDER BY name").fetchall()]


def put_rule(
    conn: Conn, name: str, *, enabled: bool, action: str, params: dict[str, Any], updated_by: str
) -> StoredRule:
    """Replace a rule's settings. Raises: UnknownRule, InvalidRule."""
    clean = validate_params(name, params)
    row = conn.execute(
        f"UPDATE risk_rules SET enabled = %s, action = %s, params = %s::jsonb, version = version + 1, "
        f"updated_at = now(), updated_by = %s WHERE name = %s RETURNING {_RULE_COLUMNS}",
        (enabled, action, json.dumps(clean), updated_by, name),
    ).fetchone()
    if row is None:
        raise UnknownRule(name)
    return _rule(row)


def _median(amounts: list[int]) -> Decimal | None:
    if not amounts:
        return None
    ordered = sorted(amounts)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return (Decimal(ordered[mid - 1]) + Decimal(ordered[mid])) / 2


# What the enabled rules need (a disabled rule's part is not evaluated: a CASE branch not
# taken never runs its subquery), and whether the transfer was assessed already, in one
# round trip. Amounts come back as integers: the median is taken exactly, in Python.
_FACTS = (
    "SELECT EXISTS (SELECT 1 FROM risk_assessments WHERE event_id = %(event)s OR transfer_id = %(transfer)s), "
    "CASE WHEN %(velocity)s THEN (SELECT count(*) FROM transfers WHERE customer_id = %(customer)s "
    "AND created_at > %(velocity_from)s AND created_at <= %(at)s) END, "
    "CASE WHEN %(payee)s THEN EXISTS (SELECT 1 FROM transfers WHERE customer_id = %(customer)s "
    "AND destination_account_id = %(destination)s AND status IN ('posted', 'reversed') AND created_at < %(at)s "
    "AND id <> %(transfer)s) END, "
    "CASE WHEN %(spike)s THEN ARRAY(SELECT source_amount_minor FROM transfers WHERE customer_id = %(customer)s "
    "AND source_currency = %(currency)s AND status IN ('posted', 'reversed') AND created_at >= %(spike_from)s "
    "AND created_at < %(at)s AND id <> %(transfer)s) END, "
    "CASE WHEN %(age)s THEN (SELECT created_at FROM accounts WHERE id = %(source)s) END"
)


def _assessed_and_facts(conn: Conn, transfer: InitiatedTransfer, rules: Iterable[Rule]) -> tuple[bool, Facts]:
    by_name = {rule.name: rule for rule in rules if rule.enabled}
    at = transfer.initiated_at
    velocity, spike = by_name.get("velocity"), by_name.get("amount_spike")
    row = conn.execute(
        _FACTS,
        {
            "event": transfer.event_id,
            "transfer": transfer.transfer_id,
            "customer": transfer.customer_id,
            "destination": transfer.destination_account_id,
            "source": transfer.source_account_id,
            "currency": transfer.currency,
            "at": at,
            "velocity": velocity is not None,
            "velocity_from": at - timedelta(seconds=int(velocity.params["window_s"])) if velocity else at,
            "payee": "new_payee_amount" in by_name,
            "spike": spike is not None,
            "spike_from": at - timedelta(days=int(spike.params["days"])) if spike else at,
            "age": "new_account" in by_name,
        },
    ).fetchone()
    assert row is not None  # a SELECT without FROM: always one row
    assessed, recent, known, amounts, opened_at = row
    return bool(assessed), Facts(
        amount_minor=transfer.amount_minor,
        currency=transfer.currency,
        recent_count=int(recent or 0),
        known_payee=bool(known),
        median_minor=_median([int(a) for a in amounts]) if amounts else None,
        account_age_s=(at - opened_at).total_seconds() if opened_at is not None else 0.0,
    )


def gather_facts(conn: Conn, transfer: InitiatedTransfer, rules: Iterable[Rule]) -> Facts:
    """Read what the enabled rules need (and only that) as of the transfer's initiation."""
    return _assessed_and_facts(conn, transfer, rules)[1]


def record_assessment(
    conn: Conn, transfer: InitiatedTransfer, rules: Sequence[Rule] | None = None
) -> StoredAssessment | None:
    """Assess the transfer and record it with its `risk.assessed` event; None (and nothing
    written) when this event, or another for the same transfer, was assessed before.

    `rules` are the rules as read earlier in the caller's transaction (a consumer's batch
    reads them once); by default they are read here."""
    if rules is None:
        rules = [stored.rule for stored in list_rules(conn)]
    assessed, facts = _assessed_and_facts(conn, transfer, rules)
    if assessed:
        return None
    result = assess(rules, facts)
    row = conn.execute(
        "INSERT INTO risk_assessments (transfer_id, event_id, customer_id, workflow_id, verdict, reasons, "
        "initiated_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING RETURNING assessed_at",
        (
            transfer.transfer_id,
            transfer.event_id,
            transfer.customer_id,
            transfer.workflow_id,
            result.verdict,
            json.dumps(list(result.reasons)),
            transfer.initiated_at,
        ),
    ).fetchone()
    if row is None:
        return None
    event = make_event(
        "risk.assessed",
        business_id=transfer.transfer_id,
        key=transfer.transfer_id,
        data={
            "transfer_id": transfer.transfer_id,
            "customer_id": transfer.customer_id,
            "verdict": result.verdict,
            "reasons": list(result.reasons),
            "assessed_at": row[0],
            "initiated_event_id": transfer.event_id,
        },
        source=SOURCE,
    )
    insert_event(conn, event)
    return StoredAssessment(
        transfer_id=transfer.transfer_id,
        event_id=transfer.event_id,
        workflow_id=transfer.workflow_id,
        verdict=result.verdict,
        reasons=list(result.reasons),
        initiated_at=transfer.initiated_at,
        assessed_at=row[0],
    )


_ASSESSMENT_COLUMNS = "transfer_id, event_id, workflow_id, verdict, reasons, initiated_at, assessed_at"


def _stored(row: tuple[Any, ...]) -> StoredAssessment:
    reasons = row[4] if isinstance(row[4], list) else json.loads(row[4])
    return StoredAssessment(row[0], row[1], row[2], row[3], [str(r) for r in reasons], row[5], row[6])


def unsignalled(conn: Conn, limit: int, *, older_than_s: float = 0.0) -> list[StoredAssessment]:
    """Assessments whose verdict has not reached the workflow yet, assessed at least
    `older_than_s` ago, oldest first."""
    rows = conn.execute(
        f"SELECT {_ASSESSMENT_COLUMNS} FROM risk_assessments WHERE signalled_at IS NULL "
        "AND assessed_at <= now() - make_interval(secs => %s) ORDER BY assessed_at LIMIT %s",
        (older_than_s, limit),
    ).fetchall()
    return [_stored(r) for r in rows]


def mark_signalled(conn: Conn, transfer_ids: list[UUID]) -> None:
    conn.execute(
        "UPDATE risk_assessments SET signalled_at = now(), delivered_by = 'signal' "
        "WHERE transfer_id = ANY(%s) AND signalled_at IS NULL",
        (transfer_ids,),
    )


# Who brings a verdict to its workflow. While the transfer is in `pending_otp` its workflow
# waits for a code, and the step that takes it out of `pending_otp` (the accepting check, or
# the exemption's status step) reads the verdict from this table (`verdict_at_check`); once it
# has left, the workflow can only learn it from the signal. The consumer asks which (and
# marks the row `check` in the first case, sending nothing) holding a share lock on the
# transfer's row, and those steps change the status under the row's write lock before they
# read, so one of the two always sees the other's commit:
# - the consumer's lock first: the step's UPDATE waits for the consumer's commit, and its read
#   after the UPDATE (READ COMMITTED: a new snapshot per statement) finds the verdict;
# - the step's UPDATE first: the consumer's lock waits for the step's commit, then sees the
#   new status, and the verdict goes by signal.
# Either way the verdict arrives, and in the usual order (verdict before code) without a
# signal, which would cost the workflow a task of its own.
def leave_for_check(conn: Conn, transfer_id: UUID) -> bool:
    """In the consumer's transaction, after `record_assessment`: if the transfer still waits
    for its code, mark the verdict delivered by the check and return True (send nothing);
    otherwise False (signal it after the commit)."""
    row = conn.execute("SELECT status FROM transfers WHERE id = %s FOR SHARE", (transfer_id,)).fetchone()
    if row is None or row[0] != "pending_otp":
        return False
    conn.execute(
        "UPDATE risk_assessments SET signalled_at = now(), delivered_by = 'check' "
        "WHERE transfer_id = %s AND signalled_at IS NULL",
        (transfer_id,),
    )
    return True


def verdict_at_check(conn: Conn, transfer_id: UUID) -> StoredAssessment | None:
    """The transfer's recorded verdict, read by the step that has just moved the transfer out
    of `pending_otp` in this transaction (after its UPDATE: see `leave_for_check`)."""
    row = conn.execute(
        f"SELECT {_ASSESSMENT_COLUMNS} FROM risk_assessments WHERE transfer_id = %s", (transfer_id,)
    ).fetchone()
    return None if row is None else _stored(row)


def assessed_event_id(transfer_id: UUID) -> UUID:
    """The id of the transfer's `risk.assessed` event (derived, like every event id)."""
    return event_id(transfer_id, "risk.assessed")


@dataclass(frozen=True, slots=True)
class RiskView:
    verdict: str
    reasons: list[str]
    assessed_at: datetime


def risk_of(conn: Conn, transfer_ids: list[UUID]) -> dict[UUID, RiskView]:
    """What the API shows as each transfer's `risk`: what the workflow decided when it did
    not simply go on (a review, a block, or `risk_unavailable`), else the assessment."""
    if not transfer_ids:
        return {}
    rows = conn.execute(
        "SELECT transfer_id, verdict, reasons, decided_at, 0 FROM risk_decisions WHERE transfer_id = ANY(%(ids)s) "
        "UNION ALL SELECT transfer_id, verdict, reasons, assessed_at, 1 FROM risk_assessments "
        "WHERE transfer_id = ANY(%(ids)s) ORDER BY 5 DESC",
        {"ids": transfer_ids},
    ).fetchall()
    out: dict[UUID, RiskView] = {}
    for transfer_id, verdict, reasons, at, _ in rows:  # decisions last: they win
        listed = reasons if isinstance(reasons, list) else json.loads(reasons)
        out[transfer_id] = RiskView(verdict, [str(r) for r in listed], at)
    return out


def record_decision(conn: Conn, transfer_id: UUID, verdict: str, reasons: list[str]) -> None:
    """What the workflow acted on (idempotent: the first decision stays)."""
    conn.execute(
        "INSERT INTO risk_decisions (transfer_id, verdict, reasons) VALUES (%s, %s, %s::jsonb) "
        "ON CONFLICT (transfer_id) DO NOTHING",
        (transfer_id, verdict, json.dumps(reasons)),
    )
