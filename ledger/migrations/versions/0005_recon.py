"""Reconciliation runs and their checks, reversals (maker-checker), imported bank statements.

Revision ID: 0005_recon
Revises: 0004_api

Nothing here changes a ledger table: a reversal posts through the ledger's own function
(ledger_reverse_transfer) and only its approval workflow lives here; a statement import reads
entries and records what matched what.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_recon"
down_revision: str | Sequence[str] | None = "0004_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- One row per reconciliation run (on demand from the API or from the Temporal Schedule).
CREATE TABLE reconciliation_runs (
    id            uuid PRIMARY KEY,
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'passed', 'failed')),
    trigger       text NOT NULL CHECK (trigger IN ('api', 'schedule')),
    requested_by  uuid NULL REFERENCES staff (id),
    workflow_id   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz NULL,
    finished_at   timestamptz NULL,
    -- what was done to raise the alarm on a failed run (an outbox event, or why none was written)
    alert         jsonb NULL,
    CHECK ((status IN ('passed', 'failed')) = (finished_at IS NOT NULL))
);
CREATE INDEX reconciliation_runs_created ON reconciliation_runs (created_at DESC, id DESC);

CREATE TABLE reconciliation_checks (
    run_id     uuid NOT NULL REFERENCES reconciliation_runs (id),
    name       text NOT NULL,
    ok         boolean NOT NULL,
    details    jsonb NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);

-- Maker-checker reversals of posted transfers. The compensating transaction is the ledger's
-- (ledger_transactions.idempotency_key = reversals.id, transfers.reversal_transaction_id);
-- this row links both ways through transaction_id and transfer_id.
CREATE TABLE reversals (
    id              uuid PRIMARY KEY,
    transfer_id     uuid NOT NULL REFERENCES transfers (id),
    status          text NOT NULL CHECK (status IN ('pending_approval', 'approved', 'rejected')),
    reason          text NOT NULL,
    requested_by    uuid NOT NULL REFERENCES staff (id),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    decided_by      uuid NULL REFERENCES staff (id),
    decided_at      timestamptz NULL,
    decision_reason text NULL,
    forced          boolean NOT NULL DEFAULT false,
    transaction_id  uuid NULL REFERENCES ledger_transactions (id),
    -- forced only: what the payee could not give back, taken from settlement:<currency>
    shortfall_minor bigint NOT NULL DEFAULT 0 CHECK (shortfall_minor >= 0),
    shortfall_currency text NULL,
    version         bigint NOT NULL DEFAULT 1,
    -- four eyes, in the database too: whoever asked cannot decide
    CONSTRAINT reversals_four_eyes CHECK (decided_by IS DISTINCT FROM requested_by),
    CONSTRAINT reversals_decided CHECK ((status = 'pending_approval') = (decided_by IS NULL AND decided_at IS NULL)),
    CONSTRAINT reversals_approved_posted CHECK ((status = 'approved') = (transaction_id IS NOT NULL)),
    CONSTRAINT reversals_force_approved CHECK (NOT forced OR status = 'approved'),
    CONSTRAINT reversals_shortfall_forced CHECK (shortfall_minor = 0 OR forced)
);
-- At most one live reversal per transfer (a rejected one does not block a new request).
CREATE UNIQUE INDEX reversals_live_per_transfer ON reversals (transfer_id) WHERE status <> 'rejected';

-- Imported bank / processor statements of one account. The file's sha256 is unique per
-- account: importing the same bytes again finds this row and changes nothing.
CREATE TABLE statement_imports (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    file_sha256  text NOT NULL,
    currency     text NOT NULL,
    line_count   integer NOT NULL CHECK (line_count > 0),
    period_from  date NOT NULL,
    period_to    date NOT NULL,
    imported_by  uuid NULL REFERENCES staff (id),
    imported_at  timestamptz NOT NULL DEFAULT now(),
    -- the match report as answered at import time (counts, unmatched rows, drift)
    report       jsonb NOT NULL,
    CONSTRAINT statement_imports_file UNIQUE (account_id, file_sha256),
    CHECK (period_from <= period_to)
);

CREATE TABLE statement_lines (
    import_id    uuid NOT NULL REFERENCES statement_imports (id),
    line_no      integer NOT NULL,       -- line of the file (the header is line 1)
    value_date   date NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor <> 0),
    currency     text NOT NULL,
    reference    text NOT NULL,
    description  text NOT NULL,
    match_group  integer NULL,           -- lines and entries of one match share it
    PRIMARY KEY (import_id, line_no)
);

-- What matched what: a group of statement lines against a group of entries (1:1, 1:n, n:1).
CREATE TABLE statement_matches (
    import_id   uuid NOT NULL REFERENCES statement_imports (id),
    match_group integer NOT NULL,
    entry_id    uuid NOT NULL REFERENCES entries (id),
    rule        text NOT NULL CHECK (rule IN ('reference', 'amount_date')),
    PRIMARY KEY (import_id, match_group, entry_id)
);
-- An entry is matched by at most one statement line group, across every import.
CREATE UNIQUE INDEX statement_matches_entry ON statement_matches (entry_id);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS statement_matches, statement_lines, statement_imports, reversals,
    reconciliation_checks, reconciliation_runs;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
