"""The reconciliation checks: each reads one consistent snapshot and returns a CheckResult whose
`details` name the offending rows (capped at policy.max_rows; counts are always exact).

Every check is read-only and may run at any time next to live traffic: it reads in a
REPEATABLE READ, READ ONLY transaction, so a posting that commits half-way through a check
is either wholly in its view or wholly out of it (no false alarm from a torn read).

The stuck-transfer check needs Temporal as well: `stuck_candidates` does its database part
and the activity asks Temporal about each candidate's workflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from ledger.balances import projection_mismatches, trial_balance
from ledger.db import Conn
from ledger.states import TransferStatus as S
from ledger.uow import UnitOfWork
from recon.io import CheckResult, ReconciliationPolicy

NON_TERMINAL = (S.PENDING_OTP, S.IN_REVIEW, S.PROCESSING)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Conn]:
    """A read-only REPEATABLE READ unit of work: every statement sees the same instant (it
    writes nothing, and is rolled back at the end)."""
    with UnitOfWork(engine) as uow:
        uow.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield uow.conn


def _text(value: Any) -> Any:
    """JSON-safe value for details (they go through Temporal's history and into jsonb)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _rows(cursor_rows: list[Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{n: _text(v) for n, v in zip(names, row, strict=True)} for row in cursor_rows]


def check_trial_balance(conn: Conn, policy: ReconciliationPolicy) -> CheckResult:
    """Per currency: entries' debits equal credits, and the projections sum to zero."""
    lines = trial_balance(conn)
    off = [
        {
            "currency": line.currency,
            "debits_minor": line.debits_minor,
            "credits_minor": line.credits_minor,
            "projection_net_minor": line.projection_net_minor,
        }
        for line in lines
        if not line.balanced
    ]
    return CheckResult(
        "trial_balance",
        not off,
        {"currencies": [line.currency for line in lines], "unbalanced": off[: policy.max_rows]},
    )


def check_projections(conn: Conn, policy: ReconciliationPolicy) -> CheckResult:
    """Every account's projected ledger balance equals the sum of its entries (invariant 4).
    The held side of the projection is the holds check's business."""
    off = [m for m in projection_mismatches(conn) if m.projection_ledger_minor != m.entries_ledger_minor]
    kinds: dict[UUID, tuple[str, str, UUID | None]] = {}
    if off:
        rows = conn.execute(
            "SELECT id, kind, currency, customer_id FROM accounts WHERE id = ANY(%s)",
            ([m.account_id for m in off[: policy.max_rows]],),
        ).fetchall()
        kinds = {r[0]: (r[1], r[2], r[3]) for r in rows}
    accounts = []
    for m in off[: policy.max_rows]:
        kind, currency, customer_id = kinds.get(m.account_id, ("unknown", "", None))
        accounts.append(
            {
                "account_id": str(m.account_id),
                "kind": kind,
                "currency": currency,
                "customer_id": _text(customer_id),
                "projection_ledger_minor": m.projection_ledger_minor,
                "entries_ledger_minor": m.entries_ledger_minor,
                "difference_minor": m.projection_ledger_minor - m.entries_ledger_minor,
            }
        )
    return CheckResult("projections", not off, {"mismatched_count": len(off), "accounts": accounts})


_HOLD_FINDINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # A pending hold past its deadline still reduces available balance: the sweeper missed it.
    "overdue_pending": (
        """
        SELECT h.id, h.account_id, h.amount_minor, h.currency, h.expires_at, h.transfer_id
          FROM holds h
         WHERE h.state = 'pending' AND h.expires_at < now() - make_interval(secs => %(grace)s)
         ORDER BY h.expires_at
        """,
        ("hold_id", "account_id", "amount_minor", "currency", "expires_at", "transfer_id"),
    ),
    # A pending hold whose transfer has ended: nothing will ever release it.
    "pending_for_finished_transfer": (
        """
        SELECT h.id, h.account_id, h.amount_minor, h.currency, t.id, t.status
          FROM holds h JOIN transfers t ON t.hold_id = h.id
         WHERE h.state = 'pending' AND t.status NOT IN ('pending_otp', 'in_review', 'processing')
         ORDER BY h.created_at
        """,
        ("hold_id", "account_id", "amount_minor", "currency", "transfer_id", "transfer_status"),
    ),
    # A posted transfer's hold must be the one its posting consumed.
    "posted_transfer_hold_not_posted": (
        """
        SELECT h.id, h.account_id, h.state, t.id, t.status
          FROM transfers t JOIN holds h ON h.id = t.hold_id
         WHERE t.status IN ('posted', 'reversed') AND h.state <> 'posted'
         ORDER BY t.created_at
        """,
        ("hold_id", "account_id", "hold_state", "transfer_id", "transfer_status"),
    ),
    # Exactly one state (invariant 8). The table's CHECKs make these impossible for any normal
    # writer; checked anyway because reconciliation exists for the abnormal ones.
    "inconsistent_state": (
        """
        SELECT h.id, h.account_id, h.state, h.resolved_at, h.transaction_id
          FROM holds h
         WHERE h.state NOT IN ('pending', 'posted', 'voided', 'expired')
            OR (h.state = 'pending') <> (h.resolved_at IS NULL)
            OR (h.state = 'posted') <> (h.transaction_id IS NOT NULL)
        """,
        ("hold_id", "account_id", "state", "resolved_at", "transaction_id"),
    ),
}


def check_holds(conn: Conn, policy: ReconciliationPolicy) -> CheckResult:
    """Every hold is in exactly one state, no expired or orphaned hold still reduces an
    available balance, and each account's held amount is the sum of its pending holds."""
    details: dict[str, Any] = {}
    ok = True
    for name, (query, columns) in _HOLD_FINDINGS.items():
        rows = conn.execute(query, {"grace": policy.hold_expiry_grace_s}).fetchall()
        details[name] = {"count": len(rows), "rows": _rows(rows[: policy.max_rows], columns)}
        ok = ok and not rows
    held_off = [m for m in projection_mismatches(conn) if m.projection_held_minor != m.pending_holds_minor]
    details["held_mismatch"] = {
        "count": len(held_off),
        "rows": [
            {
                "account_id": str(m.account_id),
                "projection_held_minor": m.projection_held_minor,
                "pending_holds_minor": m.pending_holds_minor,
            }
            for m in held_off[: policy.max_rows]
        ],
    }
    return CheckResult("holds", ok and not held_off, details)


def check_outbox_published(conn: Conn, policy: ReconciliationPolicy) -> CheckResult:
    """Invariant 6: a posted transfer has exactly one `transfer.posted` row (a reversed one also
    exactly one `transfer.reversed`), no such event exists without its posting, and every
    outbox row older than the grace period was published (not parked, not waiting).

    The event counts read `posted_events` (migration 0011_retention): one compact row per
    transfer.posted / transfer.reversed outbox row, written by a trigger in the same
    transaction, and kept when the retention sweep removes the outbox row itself. A record
    counts only while its outbox row is there or the sweep may have removed it (created before
    the last sweep's outbox cutoff): an event lost any other way is still found."""
    wrong_count = conn.execute(
        """
        WITH swept AS (
            SELECT coalesce(max((cutoffs ->> 'outbox')::timestamptz), '-infinity') AS before FROM retention_runs
        )
        SELECT t.id, t.status,
               count(o.event_id) FILTER (WHERE o.type = 'transfer.posted'),
               count(o.event_id) FILTER (WHERE o.type = 'transfer.reversed')
          FROM transfers t
          LEFT JOIN posted_events o
            ON o.transfer_id = t.id
           AND (o.created_at < (SELECT before FROM swept) OR EXISTS (SELECT 1 FROM outbox x WHERE x.id = o.event_id))
         WHERE t.status IN ('posted', 'reversed')
         GROUP BY t.id, t.status
        HAVING count(o.event_id) FILTER (WHERE o.type = 'transfer.posted') <> 1
            OR count(o.event_id) FILTER (WHERE o.type = 'transfer.reversed')
               <> CASE t.status WHEN 'reversed' THEN 1 ELSE 0 END
         ORDER BY t.id
        """
    ).fetchall()
    orphan_events = conn.execute(
        """
        SELECT o.event_id, o.type, o.transfer_id
          FROM posted_events o
          LEFT JOIN transfers t ON t.id = o.transfer_id
         WHERE (t.id IS NULL
                OR t.status NOT IN ('posted', 'reversed')
                OR (o.type = 'transfer.reversed' AND t.status <> 'reversed'))
         ORDER BY o.created_at, o.event_id
        """
    ).fetchall()
    unpublished_count, oldest = conn.execute(
        # outbox_state: publication as the relay's cursor says (migration 0009).
        "SELECT count(*), min(created_at) FROM outbox_state "
        "WHERE NOT published AND created_at < now() - make_interval(secs => %s)",
        (policy.publish_grace_s,),
    ).fetchone() or (0, None)
    unpublished = conn.execute(
        """
        SELECT id, type, key, created_at, attempts, parked, last_error
          FROM outbox_state
         WHERE NOT published AND created_at < now() - make_interval(secs => %s)
         ORDER BY seq LIMIT %s
        """,
        (policy.publish_grace_s, policy.max_rows),
    ).fetchall()
    within_grace = conn.execute(
        "SELECT count(*) FROM outbox_state WHERE NOT published AND created_at >= now() - make_interval(secs => %s)",
        (policy.publish_grace_s,),
    ).fetchone()
    ok = not wrong_count and not orphan_events and unpublished_count == 0
    details = {
        "publish_grace_s": policy.publish_grace_s,
        "event_count_wrong": {
            "count": len(wrong_count),
            "rows": _rows(
                wrong_count[: policy.max_rows], ("transfer_id", "status", "posted_events", "reversed_events")
            ),
        },
        "event_without_posting": {
            "count": len(orphan_events),
            "rows": _rows(orphan_events[: policy.max_rows], ("event_id", "type", "transfer_id")),
        },
        "unpublished": {
            "count": int(unpublished_count),
            "oldest_created_at": _text(oldest),
            "rows": _rows(unpublished, ("event_id", "type", "key", "created_at", "attempts", "parked", "last_error")),
        },
        # Not an error: the relay's normal backlog.
        "unpublished_within_grace": int(within_grace[0]) if within_grace else 0,
    }
    return CheckResult("outbox_published", ok, details)


def check_consumer_counts(conn: Conn, policy: ReconciliationPolicy) -> CheckResult:
    """Each consumer applied every published event of the types it handles (those it has an
    `event_counts` row for), once: its counters equal its `processed_events` rows per type
    (plus the rows the retention sweep removed, tallied in `consumer_swept_counts`), it
    applied nothing the outbox does not have, and it misses no row published more than the
    grace period ago.

    After a retention sweep, dedupe rows outlive the outbox rows they name: an applied event
    whose outbox row is gone counts as unknown only if it was applied after the last sweep's
    outbox cutoff plus the grace period (a row swept was created before that cutoff)."""
    counters = conn.execute("SELECT consumer, type, count FROM event_counts ORDER BY consumer, type").fetchall()
    applied: dict[tuple[str, str], int] = {}
    for consumer, event_type, n in conn.execute(
        """
        SELECT pe.consumer, coalesce(pe.type, o.type), count(*)
          FROM processed_events pe LEFT JOIN outbox o ON pe.type IS NULL AND o.id = pe.event_id
         WHERE pe.type IS NOT NULL OR o.id IS NOT NULL
         GROUP BY 1, 2
         UNION ALL
        SELECT consumer, type, count FROM consumer_swept_counts
        """
    ).fetchall():
        applied[(consumer, event_type)] = applied.get((consumer, event_type), 0) + int(n)
    published = {
        r[0]: int(r[1])
        for r in conn.execute("SELECT type, count(*) FROM outbox_state WHERE published GROUP BY type").fetchall()
    }
    counter_mismatch = [
        {"consumer": c, "type": t, "event_counts": int(n), "processed_events": applied.get((c, t), 0)}
        for c, t, n in counters
        if int(n) != applied.get((c, t), 0)
    ]
    unknown = conn.execute(
        """
        SELECT pe.consumer, count(*), min(pe.event_id::text)
          FROM processed_events pe
         WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = pe.event_id)
           AND pe.processed_at > coalesce(
                   (SELECT max((r.cutoffs ->> 'outbox')::timestamptz) FROM retention_runs r), '-infinity')
                 + make_interval(secs => %s)
         GROUP BY pe.consumer ORDER BY pe.consumer
        """,
        (policy.consumer_grace_s,),
    ).fetchall()
    missing = conn.execute(
        """
        -- The published events a consumer has not applied first (few), and only for those
        -- the time each was published (an index probe per event).
        WITH unapplied AS MATERIALIZED (
            SELECT ec.consumer, o.type, o.id, o.published_at
              FROM event_counts ec
              JOIN outbox_state o ON o.type = ec.type
             WHERE o.published
               AND NOT EXISTS (SELECT 1 FROM processed_events pe WHERE pe.consumer = ec.consumer AND pe.event_id = o.id)
        )
        SELECT consumer, type, count(*), min(id::text)
          FROM unapplied
         WHERE published_at < now() - make_interval(secs => %s)
         GROUP BY consumer, type ORDER BY consumer, type
        """,
        (policy.consumer_grace_s,),
    ).fetchall()
    consumers = sorted({c for c, _, _ in counters})
    ok = not counter_mismatch and not unknown and not missing
    details = {
        "consumer_grace_s": policy.consumer_grace_s,
        "consumers": consumers,
        "published_per_type": published,
        "applied_per_consumer_type": [
            {"consumer": c, "type": t, "applied": n} for (c, t), n in sorted(applied.items())
        ],
        "counter_mismatch": counter_mismatch[: policy.max_rows],
        "applied_unknown_event": _rows(unknown[: policy.max_rows], ("consumer", "count", "example_event_id")),
        "missing": _rows(missing[: policy.max_rows], ("consumer", "type", "count", "example_event_id")),
    }
    return CheckResult("consumer_counts", ok, details)


@dataclass(frozen=True)
class StuckCandidate:
    transfer_id: UUID
    status: str
    workflow_id: str
    updated_at: datetime
    age_s: float
    overdue: bool
    deadline_s: float | None


def stuck_candidates(conn: Conn, policy: ReconciliationPolicy, limit: int = 1000) -> tuple[list[StuckCandidate], int]:
    """Non-terminal transfers older than the workflow grace period (the oldest `limit`), each
    marked overdue when it has been in its status longer than the status allows, and the
    total count of such transfers."""
    rows = conn.execute(
        """
        SELECT id, status, workflow_id, updated_at, extract(epoch FROM now() - updated_at)::float8, count(*) OVER ()
          FROM transfers
         WHERE status = ANY(%s) AND updated_at < now() - make_interval(secs => %s)
         ORDER BY updated_at LIMIT %s
        """,
        (list(NON_TERMINAL), policy.workflow_grace_s, limit),
    ).fetchall()
    deadlines: dict[str, float | None] = {
        S.PENDING_OTP: float(policy.otp_ttl_s + policy.pending_otp_margin_s),
        S.PROCESSING: float(policy.processing_stuck_s),
        S.IN_REVIEW: None,  # waits for a person: no deadline, but it needs its workflow
    }
    out = []
    for transfer_id, status, workflow_id, updated_at, age_s, _ in rows:
        deadline = deadlines.get(status)
        out.append(
            StuckCandidate(
                transfer_id, status, workflow_id, updated_at, age_s, deadline is not None and age_s > deadline, deadline
            )
        )
    return out, int(rows[0][5]) if rows else 0
