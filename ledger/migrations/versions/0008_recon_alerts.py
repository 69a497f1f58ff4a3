"""Reconciliation alerts: the outbox accepts `reconciliation.failed` on the topic `ledgerflow.ops`.

Revision ID: 0008_recon_alerts
Revises: 0007_relay_outbox

Two changes to the outbox's value checks, nothing else:
- `ledger_topic` (the enum behind the CHECK `outbox_topic`) gains 'ledgerflow.ops';
- `outbox_type_topic` maps `reconciliation.*` to 'ledgerflow.ops'. Its old rule (topic =
  'ledgerflow.' || <type prefix> || 's') would demand 'ledgerflow.reconciliations'; every
  other prefix keeps its rule, so no existing row can break it.

Why ADD VALUE runs inside the migration's transaction rather than in an `autocommit_block`:
ledger.migrate runs every pending migration in ONE transaction that the caller opened (the
engine.begin() in ledger.migrate._run, handed to env.py as an external transaction), under a
transaction-scoped advisory lock. `autocommit_block` needs the transaction to be Alembic's own
(it asserts so), and it would commit the migrations before it and drop that lock half-way.
Since PostgreSQL 12, ALTER TYPE ... ADD VALUE may run inside a transaction block; the only
restriction is that the new value cannot be used before that transaction commits. Nothing
here uses it (the new CHECK is on text and never casts to ledger_topic), and the first
`ledgerflow.ops` row is written by a later transaction. Older servers are refused with a
clear message instead of a half-applied migration.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_recon_alerts"
down_revision: str | Sequence[str] | None = "0007_relay_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIN_SERVER_VERSION_NUM = 120000  # ALTER TYPE ... ADD VALUE inside a transaction block

UPGRADE = """
ALTER TYPE ledger_topic ADD VALUE IF NOT EXISTS 'ledgerflow.ops' AFTER 'ledgerflow.notifications';

-- transfer.* -> ledgerflow.transfers, account.* -> ledgerflow.accounts, notification.* ->
-- ledgerflow.notifications (as before); reconciliation.* -> ledgerflow.ops. A CASE on one
-- prefix, not a lookup table: this CHECK runs on every posting.
ALTER TABLE outbox
    DROP CONSTRAINT outbox_type_topic,
    ADD CONSTRAINT outbox_type_topic CHECK (topic = CASE split_part(type, '.', 1)
        WHEN 'reconciliation' THEN 'ledgerflow.ops'
        ELSE 'ledgerflow.' || split_part(type, '.', 1) || 's' END);
"""

# PostgreSQL cannot drop one value of an enum: the type is rebuilt without it. Only the CHECK
# `outbox_topic` depends on it (the columns are text), so that CHECK is dropped and re-made.
# An alert the relay has not published yet would be lost without a trace: the downgrade
# refuses while one is waiting. Published ones are on Kafka, and every run keeps its alert in
# reconciliation_runs.alert, so those rows go.
DOWNGRADE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM outbox WHERE topic = 'ledgerflow.ops' AND published_at IS NULL) THEN
        RAISE EXCEPTION 'outbox rows on ledgerflow.ops are not published yet; let the relay publish them, '
                        'or delete them knowingly, before downgrading below 0008_recon_alerts';
    END IF;
END $$;
DELETE FROM outbox WHERE topic = 'ledgerflow.ops';

ALTER TABLE outbox
    DROP CONSTRAINT outbox_type_topic,
    ADD CONSTRAINT outbox_type_topic CHECK (topic = 'ledgerflow.' || split_part(type, '.', 1) || 's'),
    DROP CONSTRAINT outbox_topic;
ALTER TYPE ledger_topic RENAME TO ledger_topic_0008;
CREATE TYPE ledger_topic AS ENUM ('ledgerflow.transfers', 'ledgerflow.accounts', 'ledgerflow.notifications');
ALTER TABLE outbox ADD CONSTRAINT outbox_topic CHECK (topic::ledger_topic IS NOT NULL);
DROP TYPE ledger_topic_0008;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    version_num = int(op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one())
    if version_num < MIN_SERVER_VERSION_NUM:
        raise RuntimeError(
            f"0008_recon_alerts needs PostgreSQL 12 or later (ALTER TYPE ... ADD VALUE inside the "
            f"migration's transaction); this server is {version_num}"
        )
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
