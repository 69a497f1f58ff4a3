"""Drop the SQL functions of the standalone hold API, which has no caller left.

Revision ID: 0015_drop_dead_hold_functions
Revises: 0014_risk

`ledger_place_hold`, `ledger_release_hold` and `ledger_expire_due_holds` served the hold API
and its expiry sweeper, both deleted (issue #19): a transfer's hold is placed, released and
posted by `ledger_create_transfer`, `ledger_void_transfer` and `ledger_post_transfer`, and
`ledger_release_pending_hold` (kept) is what those call. The three files leave
ledger.repeatable.FILES, so a database built from scratch never has them; this drops them
from a database upgraded from 0014, and forgets their records in `ledger_sql_files`.

The downgrade recreates them from their last text, kept under ledger/sql/retired/ rather than
inlined here: the SQL stays one reviewable file per function, byte for byte what 0014 had,
and no versioned migration holds a function definition (tests/ledger/test_sql_files.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from ledger.repeatable import apply_retired, forget

revision: str = "0015_drop_dead_hold_functions"
down_revision: str | Sequence[str] | None = "0014_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Their files under ledger/sql/retired/ (and their old paths, as recorded in ledger_sql_files).
RETIRED = ("ledger_place_hold.sql", "ledger_release_hold.sql", "ledger_expire_due_holds.sql")


def upgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("DROP FUNCTION IF EXISTS ledger_place_hold, ledger_release_hold, ledger_expire_due_holds")
    forget(bind, [f"functions/{name}" for name in RETIRED])


def downgrade() -> None:
    bind = op.get_bind()
    for name in RETIRED:
        apply_retired(bind, name)
