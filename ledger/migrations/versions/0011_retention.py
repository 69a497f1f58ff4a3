"""OTP codes sealed in the inbox; what the retention sweep needs (invariants 9 and 13).

Revision ID: 0011_retention
Revises: 0009_outbox_cursor

- `notifications` gains `otp_challenge_ref` and `code_sealed`: an OTP message's body holds a
  mask where the code goes and the code itself stays sealed (otp/delivery.py). The function
  `otp_code_unusable(ref, now)` says whether a challenge's code may still be shown, and why
  not ('used', 'cancelled', 'expired'): the one place a later kind of challenge (payees,
  standing orders) adds its rule.
- Codes stored in clear before this migration (outbox `notification.requested` rows and inbox
  bodies) are redacted here: the message keeps amount, currency and payee, the code shows as
  the mask. A customer with a challenge pending at upgrade time waits for it to expire and
  starts again; sealing them instead would need the seal key inside the migration.
- `posted_events`: one compact row per `transfer.posted` / `transfer.reversed` event, written by
  a trigger in the same transaction as its outbox row. Reconciliation's "one transfer.posted
  per posted transfer" check reads it, so sweeping old outbox rows keeps that check true.
- `processed_events.type`: consumers record the event type with the dedupe row, so the sweep
  can keep the per-type tally (`consumer_swept_counts`) that the consumer-counts check adds
  to what is left.
- `retention_runs`: one row per sweep, with its cutoffs and the rows removed per target,
  updated after every batch (the progress of a long sweep).
- BRIN indexes on the time columns the sweep filters on: a few pages each and nearly free on
  insert, where a B-tree on outbox.created_at would cost every posting an index entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from ledger.repeatable import apply_file

revision: str = "0011_retention"
down_revision: str | Sequence[str] | None = "0010_shared_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
ALTER TABLE notifications ADD COLUMN otp_challenge_ref text NULL;
ALTER TABLE notifications ADD COLUMN code_sealed text NULL;
ALTER TABLE notifications ADD CONSTRAINT notifications_code_sealed
    CHECK (code_sealed IS NULL OR (otp_challenge_ref IS NOT NULL AND code_sealed LIKE 'lfs1.%'));
-- The codes still to erase (few: only messages whose challenge was live recently).
CREATE INDEX notifications_sealed ON notifications (created_at) WHERE code_sealed IS NOT NULL;

-- Clear codes from before: the OTP message's " is 123456." becomes the mask.
UPDATE notifications
   SET body = regexp_replace(body, ' is [0-9]{6}\.', ' is ' || repeat(U&'\2022', 6) || '.')
 WHERE body ~ ' is [0-9]{6}\.';
UPDATE outbox
   SET payload = jsonb_set(payload::jsonb, '{data,body}',
                           to_jsonb(regexp_replace(payload -> 'data' ->> 'body', ' is [0-9]{6}\.',
                                                   ' is ' || repeat(U&'\2022', 6) || '.')))::json
 WHERE type = 'notification.requested' AND payload -> 'data' ->> 'body' ~ ' is [0-9]{6}\.';

CREATE TABLE posted_events (
    event_id    uuid PRIMARY KEY,
    transfer_id uuid NOT NULL,
    type        text NOT NULL CHECK (type IN ('transfer.posted', 'transfer.reversed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posted_events_transfer ON posted_events (transfer_id);
INSERT INTO posted_events (event_id, transfer_id, type, created_at)
SELECT id, key::uuid, type, created_at FROM outbox WHERE type IN ('transfer.posted', 'transfer.reversed');

CREATE TRIGGER outbox_posted_events AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.type IN ('transfer.posted', 'transfer.reversed'))
    EXECUTE FUNCTION outbox_record_posted_event();

ALTER TABLE processed_events ADD COLUMN type text NULL;
CREATE TABLE consumer_swept_counts (
    consumer text NOT NULL,
    type     text NOT NULL,
    count    bigint NOT NULL DEFAULT 0 CHECK (count >= 0),
    PRIMARY KEY (consumer, type)
);

CREATE TABLE retention_runs (
    id           uuid PRIMARY KEY,
    workflow_id  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz NULL,
    -- target name -> the cutoff it used (RFC 3339), and -> rows removed so far
    cutoffs      jsonb NOT NULL DEFAULT '{}',
    removed      jsonb NOT NULL DEFAULT '{}',
    batches      integer NOT NULL DEFAULT 0,
    error        text NULL
);
CREATE INDEX retention_runs_started ON retention_runs (started_at DESC);

CREATE INDEX outbox_created_brin ON outbox USING brin (created_at);
CREATE INDEX outbox_publications_published_brin ON outbox_publications USING brin (published_at);
CREATE INDEX processed_events_processed_brin ON processed_events USING brin (processed_at);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS processed_events_processed_brin;
DROP INDEX IF EXISTS outbox_publications_published_brin;
DROP INDEX IF EXISTS outbox_created_brin;
DROP TABLE IF EXISTS retention_runs;
DROP TABLE IF EXISTS consumer_swept_counts;
ALTER TABLE processed_events DROP COLUMN IF EXISTS type;
DROP TRIGGER IF EXISTS outbox_posted_events ON outbox;
DROP FUNCTION IF EXISTS outbox_record_posted_event();
DROP TABLE IF EXISTS posted_events;
DROP FUNCTION IF EXISTS otp_code_unusable(text, timestamptz);
DROP INDEX IF EXISTS notifications_sealed;
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_code_sealed;
ALTER TABLE notifications DROP COLUMN IF EXISTS code_sealed;
ALTER TABLE notifications DROP COLUMN IF EXISTS otp_challenge_ref;
"""
# The redaction is not undone: the codes are gone, and an expired code is worth nothing.


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    # The trigger function outbox_posted_events binds (ledger/sql/functions/); otp_code_unusable
    # comes from its file after the versioned steps.
    apply_file(op.get_bind(), "functions/outbox_record_posted_event.sql")
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
