"""Repeatable migrations: the SQL functions and views, one file each under ledger/sql/.

Flyway's `R__` idea. Versioned Alembic migrations hold tables, types, triggers and data
moves; a function or view lives in ONE file holding its live definition (`CREATE OR
REPLACE`). After Alembic's versioned steps, `apply_pending` runs each file whose checksum
differs from the one recorded in `ledger_sql_files` (or that is not recorded), in the order
of `FILES` below, and records it. A second run applies nothing.

Each file names the revision it `requires` (where the tables it reads first exist): when the
database is at an older revision (a test upgrading to `0009_outbox_cursor`), the files that
need later tables wait. Versioned migrations that need a function during their own upgrade
(a trigger binds it, a column default or a data move calls it) run its file with
`apply_file` first; such a file must stay valid at that revision (PL/pgSQL bodies are only
parsed at creation, so a trigger function always is).

A downgrade may drop what the files created (0001 drops every function): `forget_all`
clears the records so that the next upgrade re-applies every file.

A function dropped for good leaves `FILES`: the versioned migration that drops it keeps its
last text under ledger/sql/retired/ (never applied by the repeatable step) for its downgrade
to recreate it with `apply_retired` (0015_drop_dead_hold_functions).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection

SQL_DIR = Path(__file__).resolve().parent / "sql"
# Functions dropped by a versioned migration: their last text, for that migration's downgrade.
RETIRED_DIR = SQL_DIR / "retired"
RECORD_TABLE = "ledger_sql_files"
# The key migrations/env.py locks for the versioned steps: on one connection the lock is
# re-entrant, and two processes upgrading at once queue on it, so only the first applies.
MIGRATION_LOCK_KEY = 0x1ED6E5F10


@dataclass(frozen=True)
class SqlFile:
    """One repeatable file: its path under ledger/sql/ and the revision it needs."""

    path: str
    requires: str

    def text(self) -> str:
        return (SQL_DIR / self.path).read_text(encoding="utf-8")

    def checksum(self) -> str:
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()


# The order the files are applied in: a SQL-language function after the functions its body
# calls (PostgreSQL checks SQL bodies at creation), views after the functions they call.
# `requires` is the revision that first created the object (its name and signature).
FILES: tuple[SqlFile, ...] = (
    # 0001_ledger: value helpers first (called by the SQL-language envelope below)
    SqlFile("functions/ledger_uuidv7.sql", "0001_ledger"),
    SqlFile("functions/ledger_rfc3339.sql", "0001_ledger"),
    SqlFile("functions/ledger_transfer_envelope.sql", "0001_ledger"),
    SqlFile("functions/ledger_legs_json.sql", "0001_ledger"),
    # 0001_ledger: trigger functions
    SqlFile("functions/ledger_refuse_change.sql", "0001_ledger"),
    SqlFile("functions/ledger_entries_balanced.sql", "0001_ledger"),
    SqlFile("functions/ledger_holds_guard.sql", "0001_ledger"),
    SqlFile("functions/ledger_accounts_guard.sql", "0001_ledger"),
    SqlFile("functions/ledger_accounts_sync_balance.sql", "0001_ledger"),
    # 0001_ledger: the posting path
    SqlFile("functions/ledger_insert_event.sql", "0001_ledger"),
    SqlFile("functions/ledger_hold_refusal.sql", "0001_ledger"),
    SqlFile("functions/ledger_account_refusal.sql", "0001_ledger"),
    SqlFile("functions/ledger_apply_legs.sql", "0001_ledger"),
    SqlFile("functions/ledger_post.sql", "0001_ledger"),
    SqlFile("functions/ledger_release_pending_hold.sql", "0001_ledger"),
    SqlFile("functions/ledger_create_transfer.sql", "0001_ledger"),
    SqlFile("functions/ledger_post_transfer.sql", "0001_ledger"),
    SqlFile("functions/ledger_void_transfer.sql", "0001_ledger"),
    SqlFile("functions/ledger_reverse_transfer.sql", "0001_ledger"),
    # 0004_api
    SqlFile("functions/api_audit_log_append_only.sql", "0004_api"),
    # 0009_outbox_cursor: the functions, then the views that call them
    SqlFile("functions/outbox_covered.sql", "0009_outbox_cursor"),
    SqlFile("functions/outbox_published_at.sql", "0009_outbox_cursor"),
    SqlFile("views/outbox_state.sql", "0009_outbox_cursor"),
    SqlFile("views/outbox_waiting.sql", "0009_outbox_cursor"),
    # 0011_retention
    SqlFile("functions/otp_code_unusable.sql", "0011_retention"),
    SqlFile("functions/outbox_record_posted_event.sql", "0011_retention"),
    # 0013_payees
    SqlFile("functions/ledger_account_number.sql", "0013_payees"),
    SqlFile("functions/ledger_account_number_guard.sql", "0013_payees"),
)


def find(path: str) -> SqlFile:
    for sql_file in FILES:
        if sql_file.path == path:
            return sql_file
    raise KeyError(f"{path} is not in ledger.repeatable.FILES")


def _execute(conn: Connection, sql: str) -> None:
    # Straight to the driver with no parameters: the SQL is full of ':' and '%'.
    conn.exec_driver_sql(sql, execution_options={"no_parameters": True})


def apply_file(conn: Connection, path: str) -> None:
    """Run one file now, unrecorded (from a versioned migration that needs the function
    during its own upgrade); the repeatable step after the versioned ones records it."""
    _execute(conn, find(path).text())


def apply_retired(conn: Connection, name: str) -> None:
    """Recreate a dropped function from its last text (ledger/sql/retired/<name>), from the
    downgrade of the migration that dropped it; it is not recorded (it is in no `FILES`)."""
    _execute(conn, (RETIRED_DIR / name).read_text(encoding="utf-8"))


def forget(conn: Connection, paths: list[str]) -> None:
    """Drop the records of files that left `FILES` (their function was dropped)."""
    if conn.exec_driver_sql(f"SELECT to_regclass('{RECORD_TABLE}') IS NOT NULL").scalar_one():
        conn.exec_driver_sql(f"DELETE FROM {RECORD_TABLE} WHERE name = ANY(%(names)s)", {"names": paths})


def _ensure_record_table(conn: Connection) -> None:
    _execute(
        conn,
        f"""
        CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (
            name       text PRIMARY KEY,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""",
    )


def _applied_revisions(conn: Connection, script: ScriptDirectory) -> set[str]:
    exists = conn.exec_driver_sql("SELECT to_regclass('alembic_version') IS NOT NULL").scalar_one()
    if not exists:
        return set()
    heads = [str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    if not heads:
        return set()
    return {rev.revision for rev in script.iterate_revisions(tuple(heads), "base") if rev is not None}


def apply_pending(conn: Connection, script: ScriptDirectory) -> list[str]:
    """Apply every file whose revision is in the database and whose checksum is new; returns
    the paths applied, in order. Runs in the caller's transaction, under the migration lock."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    revisions = _applied_revisions(conn, script)
    if not revisions:
        return []
    _ensure_record_table(conn)
    recorded = {
        str(name): str(checksum)
        for name, checksum in conn.exec_driver_sql(f"SELECT name, checksum FROM {RECORD_TABLE}")
    }
    applied: list[str] = []
    for sql_file in FILES:
        if sql_file.requires not in revisions:
            continue
        checksum = sql_file.checksum()
        if recorded.get(sql_file.path) == checksum:
            continue
        _execute(conn, sql_file.text())
        conn.exec_driver_sql(
            f"INSERT INTO {RECORD_TABLE} (name, checksum) VALUES (%(name)s, %(checksum)s) "
            "ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
            {"name": sql_file.path, "checksum": checksum},
        )
        applied.append(sql_file.path)
    return applied


def forget_all(conn: Connection) -> None:
    """After a downgrade: what the files made may be gone, so the next upgrade runs them all."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    if conn.exec_driver_sql(f"SELECT to_regclass('{RECORD_TABLE}') IS NOT NULL").scalar_one():
        _execute(conn, f"DELETE FROM {RECORD_TABLE}")
