"""Risk controls: transfer limits, fraud rules, assessments and the topic `ledgerflow.risk`.

Revision ID: 0014_risk
Revises: 0009_outbox_cursor

- `limit_sets`: one row per scope, 'default' (everyone) or a customer id (their overrides).
  `limits` is a JSON list of `{currency, per_transfer_max_minor, daily_max_minor,
  hourly_count_max}` (null: no limit of that kind); `version` is the ETag. A customer's
  entry for a currency replaces the default entry for that currency; currencies they have
  no entry for fall back to the defaults. The default set starts empty (no limit): admins
  set it (`PUT /ops/v1/limits/defaults`), since a number picked here would be a guess about
  someone else's business.
- `transfers_limit_usage`: the index the limit check reads under its lock (a customer's
  transfers in one source currency since a point in time).
- `risk_rules`: the four built-in rules with their action and parameters, seeded here.
- `risk_assessments`: one per `transfer.initiated` event (unique on the event id, so a
  redelivered event is recorded once), with `signalled_at` set once the verdict reached the
  transfer's workflow (NULL: still to deliver; the consumer retries those).
- `risk_decisions`: what the workflow did about risk when it did not simply go on: the
  verdict it acted on, or `risk_unavailable` when no verdict came in time.
- The outbox accepts `risk.*` events on the topic `ledgerflow.risk` (enum value and the
  type-to-topic CHECK, as 0008 did for `ledgerflow.ops`; see its docstring for why ADD VALUE
  runs inside the migration's transaction).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_risk"
down_revision: str | Sequence[str] | None = "0013_payees"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
CREATE TABLE limit_sets (
    scope      text PRIMARY KEY CONSTRAINT limit_sets_scope CHECK (
                   scope = 'default' OR scope ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    limits     jsonb NOT NULL CONSTRAINT limit_sets_limits_array CHECK (jsonb_typeof(limits) = 'array'),
    version    bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NULL
);
INSERT INTO limit_sets (scope, limits) VALUES ('default', '[]');

CREATE INDEX transfers_limit_usage ON transfers (customer_id, source_currency, created_at);

CREATE TABLE risk_rules (
    name       text PRIMARY KEY,
    enabled    boolean NOT NULL,
    action     text NOT NULL CONSTRAINT risk_rules_action CHECK (action IN ('review', 'block')),
    params     jsonb NOT NULL CONSTRAINT risk_rules_params_object CHECK (jsonb_typeof(params) = 'object'),
    version    bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NULL
);
-- The defaults: a burst of transfers, a large first payment to someone new, an amount far
-- above the customer's habit, a large payment from a brand-new customer. All `review`:
-- a human looks before money leaves; `block` is an admin's choice per rule.
INSERT INTO risk_rules (name, enabled, action, params) VALUES
    ('velocity', true, 'review', '{"count": 10, "window_s": 600}'),
    ('new_payee_amount', true, 'review',
     '{"amount_minor": {"USD": 500000, "EUR": 500000, "GBP": 500000, "CHF": 500000, "JPY": 75000000, "BHD": 190000}}'),
    ('amount_spike', true, 'review', '{"factor": 10, "days": 30}'),
    ('new_account', true, 'review',
     '{"hours": 24, "amount_minor": {"USD": 200000, "EUR": 200000, "GBP": 200000, "CHF": 200000, '
     '"JPY": 30000000, "BHD": 75000}}');

CREATE TABLE risk_assessments (
    transfer_id  uuid PRIMARY KEY,
    event_id     uuid NOT NULL CONSTRAINT risk_assessments_event_key UNIQUE,
    customer_id  uuid NOT NULL,
    workflow_id  text NOT NULL,
    verdict      text NOT NULL CONSTRAINT risk_assessments_verdict CHECK (verdict IN ('allow', 'review', 'block')),
    reasons      jsonb NOT NULL,
    initiated_at timestamptz NOT NULL,
    assessed_at  timestamptz NOT NULL DEFAULT now(),
    signalled_at timestamptz NULL
);
CREATE INDEX risk_assessments_unsignalled ON risk_assessments (assessed_at) WHERE signalled_at IS NULL;

CREATE TABLE risk_decisions (
    transfer_id uuid PRIMARY KEY REFERENCES transfers (id),
    verdict     text NOT NULL CONSTRAINT risk_decisions_verdict CHECK (verdict IN ('allow', 'review', 'block')),
    reasons     jsonb NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TYPE ledger_topic ADD VALUE IF NOT EXISTS 'ledgerflow.risk';
ALTER TABLE outbox
    DROP CONSTRAINT outbox_type_topic,
    ADD CONSTRAINT outbox_type_topic CHECK (topic = CASE split_part(type, '.', 1)
        WHEN 'reconciliation' THEN 'ledgerflow.ops'
        WHEN 'risk' THEN 'ledgerflow.risk'
        ELSE 'ledgerflow.' || split_part(type, '.', 1) || 's' END);
"""

# As in 0008: the enum is rebuilt without the value (only the CHECK `outbox_topic` uses it),
# and the downgrade refuses while a risk event still waits for the relay.
DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM outbox_state WHERE topic = 'ledgerflow.risk' AND NOT published AND NOT parked) THEN
        RAISE EXCEPTION 'outbox rows on ledgerflow.risk are not published yet; let the relay publish them, '
                        'or delete them knowingly, before downgrading below 0014_risk';
    END IF;
END $$;
DELETE FROM outbox WHERE topic = 'ledgerflow.risk';
ALTER TABLE outbox
    DROP CONSTRAINT outbox_type_topic,
    ADD CONSTRAINT outbox_type_topic CHECK (topic = CASE split_part(type, '.', 1)
        WHEN 'reconciliation' THEN 'ledgerflow.ops'
        ELSE 'ledgerflow.' || split_part(type, '.', 1) || 's' END),
    DROP CONSTRAINT outbox_topic;
ALTER TYPE ledger_topic RENAME TO ledger_topic_0014;
CREATE TYPE ledger_topic AS ENUM ('ledgerflow.transfers', 'ledgerflow.accounts', 'ledgerflow.notifications',
                                  'ledgerflow.ops');
ALTER TABLE outbox ADD CONSTRAINT outbox_topic CHECK (topic::ledger_topic IS NOT NULL);
DROP TYPE ledger_topic_0014;

DROP TABLE risk_decisions, risk_assessments, risk_rules, limit_sets;
DROP INDEX transfers_limit_usage;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so nothing in the SQL is taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
