"""Outbox: the relay keeps one cursor (snapshot deltas) instead of stamping every row.

Revision ID: 0009_outbox_cursor
Revises: 0008_recon_alerts

Until now the relay marked each published row (`UPDATE outbox SET published_at = ...`): a new
1 kB row version, its WAL and two index entries per event. That write was about 25 us of
PostgreSQL CPU per event, three quarters of the relay's database cost, and the reason a
backlog drained at a quarter of the rate Kafka takes.

Now every row records the id of the transaction that wrote it (`txid`, a 64-bit xid8 that
never wraps), and the relay publishes in *snapshot deltas*, as PgQ does:

- `outbox_cursor.done_snapshot` is a `pg_snapshot`: every row whose transaction is visible in
  it has been published (or parked);
- the next delta is the rows visible in a newer snapshot (`target_snapshot`) but not in the
  done one: exactly the transactions that committed in between, with no gap and no late
  comer. A transaction still running when the target was taken is not visible in it, so it
  lands in a later delta whatever its `seq` (the flaw of a plain `seq` watermark, which can
  skip a row that commits after a higher `seq` was read);
- a delta is published in `seq` order, page by page; `after_seq` is how far the current delta
  got. Deltas follow commit order, so all events of one key still go out in order;
- the relay's only writes per page are this one cursor row and one `outbox_publications` row
  (what was published when: the ops API's per-event `published_at`);
- the envelope is stored as `json`, the text Kafka gets, instead of `jsonb`, which had to be
  rendered as text again for every row read (4 us a row, two thirds of the page query).
  The writers are unchanged: their jsonb values are converted on insert (an assignment
  cast), in jsonb's canonical form, byte for byte what the relay published before.

A row is published when `outbox_published(...)` says so: the cursor covers it and it is not
parked. `published_at` stays as a column: rows published before this migration keep their
time, and a stamped row counts as published (an operator, or a test, may stamp one by hand).
The view `outbox_state` gives every row its effective `published_at`.

Rows written before this migration: published ones get `txid` 1 (visible in every snapshot),
waiting and parked ones the migration's own transaction id, so the first delta picks up
exactly the rows still to be published.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from ledger.repeatable import apply_file

revision: str = "0009_outbox_cursor"
down_revision: str | Sequence[str] | None = "0008_recon_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- The envelope is kept as the text Kafka gets (json keeps its input verbatim; the writers
-- still build it as jsonb, converted once on insert): reading it back as jsonb rendered the
-- text again for every row, 4 us each, two thirds of the relay's page query.
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;

-- A constant default adds the column without rewriting the table; the rows still to be
-- published then get this transaction's id, and new rows their own.
ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT '1';
UPDATE outbox SET txid = pg_current_xact_id() WHERE published_at IS NULL;
ALTER TABLE outbox ALTER COLUMN txid SET DEFAULT pg_current_xact_id();

DROP INDEX outbox_unpublished;
-- Pages of a delta are read in seq order; a delta's start is found by transaction id.
CREATE INDEX outbox_seq ON outbox (seq);
CREATE INDEX outbox_txid ON outbox (txid);
-- What ops look at: the parked rows (few).
CREATE INDEX outbox_parked ON outbox (seq) WHERE parked;

CREATE TABLE outbox_cursor (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Every row whose transaction is visible in this snapshot is published (or parked).
    done_snapshot   pg_snapshot NOT NULL,
    -- The delta being published: rows visible here and not in done_snapshot, in seq order;
    -- those with seq <= after_seq are published. NULL: no delta in progress.
    target_snapshot pg_snapshot NULL,
    after_seq       bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The last transient failure (Kafka down): what the relay is waiting for.
    failures        bigint NOT NULL DEFAULT 0,
    last_error      text NULL,
    last_error_at   timestamptz NULL
);
-- Everything before this transaction is visible, this transaction and later ones are not.
INSERT INTO outbox_cursor (done_snapshot)
VALUES ((pg_current_xact_id()::text || ':' || pg_current_xact_id()::text || ':')::pg_snapshot);

-- One row per published page: the rows of the delta (done_snapshot, target_snapshot] with
-- from_seq < seq <= to_seq went out at published_at.
CREATE TABLE outbox_publications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    done_snapshot   pg_snapshot NOT NULL,
    target_snapshot pg_snapshot NOT NULL,
    from_seq        bigint NOT NULL,
    to_seq          bigint NOT NULL,
    events          integer NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (from_seq < to_seq)
);
CREATE INDEX outbox_publications_to_seq ON outbox_publications (to_seq);
"""

DOWNGRADE = """
-- Back to per-row stamps: what the cursor covers was published (at its page's time, or now
-- when that is unknown).
UPDATE outbox o SET published_at = coalesce(outbox_published_at(o.txid, o.seq), now())
  FROM outbox_cursor c
 WHERE o.published_at IS NULL AND NOT o.parked AND outbox_covered(o.txid, o.seq, c);
DROP VIEW IF EXISTS outbox_waiting;
DROP VIEW IF EXISTS outbox_state;
DROP FUNCTION outbox_published_at(xid8, bigint);
DROP FUNCTION outbox_covered(xid8, bigint, outbox_cursor);
DROP TABLE outbox_publications;
DROP TABLE outbox_cursor;
DROP INDEX outbox_parked;
DROP INDEX outbox_txid;
DROP INDEX outbox_seq;
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL AND NOT parked;
ALTER TABLE outbox DROP COLUMN txid;
ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    # The data move below calls these two (their files; normally already there).
    apply_file(op.get_bind(), "functions/outbox_covered.sql")
    apply_file(op.get_bind(), "functions/outbox_published_at.sql")
    _run(DOWNGRADE)
