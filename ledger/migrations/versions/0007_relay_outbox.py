"""Relay: a dead-letter table for events a consumer cannot apply.

Revision ID: 0007_relay_outbox
Revises: 0006_posting_speed

The consumers in `relay/` (notifier, activity feed) apply each event in a savepoint of their
batch transaction. An event they cannot apply (not an envelope, a payload missing what the
consumer needs, an error in the handler) used to be logged and skipped. It is now parked
here, with its error and its raw bytes, in the same transaction as the rest of the batch and
before the offsets are committed: the partition keeps flowing, nothing is retried forever,
and an operator can see, fix and replay it (relay.dead_letters).

The outbox keeps its layout: the relay's claim still reads the partial index
`outbox_unpublished`, and `published_at` stays the per-row publication time that the ops API
and reconciliation read.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_relay_outbox"
down_revision: str | Sequence[str] | None = "0006_posting_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE consumer_dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer    text NOT NULL,
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    -- NULL when the message is not an envelope with a readable id
    event_id    uuid NULL,
    event_type  text NULL,
    key         text NULL,
    value       bytea NULL,  -- the message exactly as consumed, for a replay after the fix
    error       text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz NULL,  -- set when replayed successfully (or dismissed by ops)
    -- A redelivery of the same message (a crash before the offset commit) parks nothing new.
    CONSTRAINT consumer_dead_letters_position UNIQUE (consumer, topic, "partition", "offset")
);
-- The same event published twice (the relay is at least once) is parked once per consumer.
CREATE UNIQUE INDEX consumer_dead_letters_event ON consumer_dead_letters (consumer, event_id)
    WHERE event_id IS NOT NULL;
-- What ops look at: the open ones, oldest first.
CREATE INDEX consumer_dead_letters_open ON consumer_dead_letters (failed_at) WHERE resolved_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS consumer_dead_letters;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
