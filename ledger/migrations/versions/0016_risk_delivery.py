"""How each risk verdict reached its workflow: by signal, or read at the code check.

Revision ID: 0016_risk_delivery
Revises: 0015_drop_dead_hold_functions

`risk_assessments.delivered_by`, set together with `signalled_at`:
- `signal`: the risk consumer signalled the verdict to the workflow (the transfer had left
  `pending_otp` when the assessment committed, or a sweep re-sent it);
- `check`: the transfer was still in `pending_otp`, so the consumer sent nothing and the
  workflow reads the verdict in the step that takes it out of `pending_otp` (the accepting
  code check, or the exemption's status step). `signalled_at` is then the assessment's commit,
  from when the verdict was there to be read (issue #21: one workflow task fewer per transfer).
NULL while undelivered, as `signalled_at` is. Rows delivered before this revision were all
signalled.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016_risk_delivery"
down_revision: str | Sequence[str] | None = "0015_drop_dead_hold_functions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.get_bind().exec_driver_sql(
        "ALTER TABLE risk_assessments ADD COLUMN delivered_by text NULL "
        "CONSTRAINT risk_assessments_delivered_by CHECK (delivered_by IN ('signal', 'check')); "
        "UPDATE risk_assessments SET delivered_by = 'signal' WHERE signalled_at IS NOT NULL",
        execution_options={"no_parameters": True},
    )


def downgrade() -> None:
    op.get_bind().exec_driver_sql("ALTER TABLE risk_assessments DROP COLUMN delivered_by")
