"""Event consumers' tables: deduplication, the in-app inbox, the activity feed, event counts.

Revision ID: 0003_relay_consumers
Revises: 0002_otp

Written by the consumers in `relay/` (the notifier and the transfer-events projection), each
event's effect and its `processed_events` row in one transaction, so a redelivered event
(Kafka is at-least-once; the relay may publish a row twice after a crash) has no second effect.
The outbox itself (0001_ledger) already has what the relay needs: `parked`, `last_error` and
the partial index `outbox_unpublished` on the rows still to publish.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_relay_consumers"
down_revision: str | Sequence[str] | None = "0002_otp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- One row per (consumer, event id) it has applied: the deduplication key of docs/api.md.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The customer's in-app inbox (GET /v1/notifications). The id is the notification.requested
-- event id, so even a write that bypassed processed_events could not deliver twice.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    channel     text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    transfer_id uuid NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The inbox is listed newest first per customer, with keyset pagination on (created_at, id).
CREATE INDEX notifications_customer_created ON notifications (customer_id, created_at DESC, id DESC);

-- Per-customer activity feed projected from the transfer and account events. The key is
-- (event_id, customer_id) rather than event_id alone: one transfer.posted concerns two
-- customers (payer and payee) and each sees it in their own feed.
CREATE TABLE activity_feed (
    event_id    uuid NOT NULL,
    customer_id uuid NOT NULL,
    transfer_id uuid NULL,
    type        text NOT NULL,
    summary     text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, customer_id)
);
CREATE INDEX activity_feed_customer_occurred ON activity_feed (customer_id, occurred_at DESC, event_id DESC);

-- Events applied per consumer and type, for reconciliation against the outbox.
CREATE TABLE event_counts (
    consumer text NOT NULL,
    type     text NOT NULL,
    count    bigint NOT NULL DEFAULT 0 CHECK (count >= 0),
    PRIMARY KEY (consumer, type)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS event_counts, activity_feed, notifications, processed_events;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
