"""Bounded storage (docs/design.md invariant 13): what the retention sweep removes, one target a line.

A target is a table, a predicate saying which of its rows are past retention (`t` is the row,
`%(cutoff)s` the run's cutoff for this target: its start time minus the target's `keep_s`)
and a batch size. The sweep (workflows/retention.py, one activity per batch) removes up to
`batch` rows of one target per short transaction:

    WITH gone AS (DELETE FROM <table> WHERE ctid = ANY(ARRAY(
        SELECT t.ctid FROM <table> t WHERE <predicate> LIMIT <batch> FOR UPDATE SKIP LOCKED)))
    SELECT count(*) FROM gone

`SKIP LOCKED` and a `lock_timeout` keep it from ever queueing behind live traffic (a row a
writer holds is taken next time), and each batch commits on its own, so no lock outlives one
batch. Adding a table is one line in `targets()`, for example for the shared-state tables:

    Target("portal_sessions", "portal_sessions", "t.expires_at < %(cutoff)s", keep_s=0),

What is never removed: unpublished and parked outbox rows (the predicate requires the relay's
cursor to cover the row, and `NOT parked`), the ledger itself, holds, transfers, the audit log.
What reconciliation needs from removed rows is kept elsewhere, compactly: `posted_events`
(one row per transfer.posted / transfer.reversed) and `consumer_swept_counts` (how many dedupe
rows of each consumer and type were removed), both from migration 0011_retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, LiteralString

from psycopg import sql

from ledger.db import Conn

DAY_S: Final = 86_400
HOUR_S: Final = 3_600
# A batch waits at most this long for a lock before giving up (and is retried by Temporal):
# the sweep must never hold up a posting.
LOCK_TIMEOUT: Final = "2s"
STATEMENT_TIMEOUT: Final = "60s"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of row is kept. Plain ints: it travels through Temporal's history."""

    outbox_days: int = 7
    # Dedupe rows must outlive every copy of the event a consumer may still receive: the
    # longest topic retention (relay/topics.py) and the outbox's own (a row could be
    # republished after a relay crash as long as it is in the outbox).
    dedupe_s: int = 30 * DAY_S
    idempotency_s: int = 48 * HOUR_S
    # Throttle windows: the login window is 15 min (api/throttle.py), the OTP failure window
    # 1 h (otp/store.py); twice the window, as the login throttle's own pruning does.
    login_failures_s: int = 2 * 15 * 60
    otp_failures_s: int = 2 * HOUR_S
    batch_rows: int = 1_000


@dataclass(frozen=True)
class Target:
    name: str
    table: LiteralString
    # Which rows are past retention; `t` is the row, %(cutoff)s this run's cutoff.
    predicate: LiteralString
    keep_s: int
    batch: int = 1_000
    # What a batch does to the chosen rows (default: delete them). `{table}` is the table.
    change: LiteralString = "DELETE FROM {table}"
    # Optional statement run on the removed rows (the CTE `gone`, with `returning` columns),
    # in the same transaction: to keep a compact tally of what went.
    returning: LiteralString = "1"
    tally: LiteralString = ""


# Outbox rows the relay's cursor covers (published), not parked: the only ones ever removed.
_OUTBOX_DONE: Final = (
    "t.created_at < %(cutoff)s AND NOT t.parked "
    "AND (t.published_at IS NOT NULL "
    "     OR pg_visible_in_snapshot(t.txid, (SELECT c.done_snapshot FROM outbox_cursor c)))"
)
# A page's publication record goes once no outbox row of its range is left (the ops API shows
# a row's published_at from it), and never a record a kept row still needs.
_PUBLICATION_DONE: Final = (
    "t.published_at < %(cutoff)s AND NOT EXISTS ("
    "SELECT 1 FROM outbox o WHERE o.seq > t.from_seq AND o.seq <= t.to_seq AND NOT o.parked)"
)
_DEDUPE_TALLY: Final = (
    ", tally AS (INSERT INTO consumer_swept_counts (consumer, type, count) "
    "SELECT g.consumer, coalesce(g.type, o.type, 'unknown'), count(*) FROM gone g "
    "LEFT JOIN outbox o ON g.type IS NULL AND o.id = g.event_id GROUP BY 1, 2 "
    "ON CONFLICT (consumer, type) DO UPDATE SET count = consumer_swept_counts.count + EXCLUDED.count)"
)


def targets(policy: RetentionPolicy) -> list[Target]:
    """Every table the sweep keeps bounded, in the order it sweeps them."""
    n, outbox_s = policy.batch_rows, policy.outbox_days * DAY_S
    return [
        # Not a deletion: an OTP code whose challenge can no longer be used is erased from
        # the inbox (the message stays, the body shows the mask). keep 0: at once.
        Target(
            "inbox_otp_codes",
            "notifications",
            "t.code_sealed IS NOT NULL "
            "AND otp_code_unusable(p_ref => t.otp_challenge_ref, p_now => %(cutoff)s) IS NOT NULL",
            keep_s=0,
            batch=n,
            change="UPDATE {table} SET code_sealed = NULL",
        ),
        # Before the outbox: an old dedupe row without a type takes it from its outbox row.
        Target(
            "processed_events",
            "processed_events",
            "t.processed_at < %(cutoff)s",
            keep_s=policy.dedupe_s,
            batch=n,
            returning="consumer, event_id, type",
            tally=_DEDUPE_TALLY,
        ),
        Target("outbox", "outbox", _OUTBOX_DONE, keep_s=outbox_s, batch=n),
        Target("outbox_publications", "outbox_publications", _PUBLICATION_DONE, keep_s=outbox_s, batch=n),
        Target(
            "idempotency_keys",
            "idempotency_keys",
            "t.created_at < %(cutoff)s AND t.expires_at < now() AND t.locked_until < now()",
            keep_s=policy.idempotency_s,
            batch=n,
        ),
        Target(
            "auth_tokens",
            "auth_tokens",
            "(t.expires_at < %(cutoff)s OR t.revoked_at < %(cutoff)s)",
            keep_s=0,
            batch=n,
        ),
        # Shared state of the API processes (migration 0010): each row knows when it expires.
        Target("portal_sessions", "portal_sessions", "t.expires_at < %(cutoff)s", keep_s=0, batch=n),
        Target("rate_limit_hits", "rate_limit_hits", "t.expires_at < %(cutoff)s", keep_s=0, batch=n),
        Target("login_failures", "login_failures", "t.failed_at < %(cutoff)s", keep_s=policy.login_failures_s, batch=n),
        Target("otp_failures", "otp_failures", "t.failed_at < %(cutoff)s", keep_s=policy.otp_failures_s, batch=n),
        # The sweeps' own records: a quarter of hourly runs is plenty to look back on, and the
        # newest outbox cutoff (which reconciliation reads) is always among them.
        Target(
            "retention_runs",
            "retention_runs",
            "t.started_at < %(cutoff)s AND t.status <> 'running'",
            keep_s=90 * DAY_S,
            batch=n,
        ),
    ]


def target_named(policy: RetentionPolicy, name: str) -> Target:
    """Raises: KeyError: no target of that name."""
    for target in targets(policy):
        if target.name == name:
            return target
    raise KeyError(name)


def cutoff_for(target: Target, now: datetime) -> datetime:
    return now - timedelta(seconds=target.keep_s)


_BATCH: Final = (
    "WITH gone AS ({change} WHERE ctid = ANY(ARRAY("
    "SELECT t.ctid FROM {table} t WHERE {predicate} LIMIT %(batch)s FOR UPDATE OF t SKIP LOCKED)) "
    "RETURNING {returning}){tally} SELECT count(*) FROM gone"
)


def sweep_batch(conn: Conn, target: Target, cutoff: datetime) -> int:
    """Remove (or redact) up to `target.batch` rows past `cutoff`, in the caller's transaction,
    which must be short: commit right after. Returns how many rows went."""
    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    # Table names and predicates are this module's constants, typed LiteralString (the table
    # name is quoted by sql.Identifier).
    row = conn.execute(
        sql.SQL(_BATCH).format(
            change=sql.SQL(target.change).format(table=sql.Identifier(target.table)),
            table=sql.Identifier(target.table),
            predicate=sql.SQL(target.predicate),
            returning=sql.SQL(target.returning),
            tally=sql.SQL(target.tally),
        ),
        {"cutoff": cutoff, "batch": target.batch},
    ).fetchone()
    return int(row[0]) if row else 0
