"""Shared state for many API processes: portal sessions and rate-limit windows in PostgreSQL.

Revision ID: 0010_shared_state
Revises: 0009_outbox_cursor

Until now a portal session and a rate-limit window lived in one API process's memory, so a
second process logged people out and doubled every limit (docs/design.md invariant 10). Both move
here; tokens, idempotency leases and the login and OTP failure counts were already here.

- `portal_sessions`: one row per signed-in browser. The row is keyed by the sha256 of the
  cookie's random 32-byte id (a dump holds no usable cookie), and the API token it carries is
  sealed (AES-256-GCM, security/sealed.py) with the id's hash as part of its purpose, so a
  sealed token cannot be moved to another row. `expires_at` slides with use and never passes
  the API token's own expiry.
- `rate_limit_hits`: one row per admitted request per rule and key (a sliding-window log).
  The check and the insert run in one transaction under an advisory lock per (rule, key), so
  concurrent requests on any process cannot all see room for one more.
- `login_failures` and `otp_failures` gain `expires_at` (when a row stops counting), so the
  retention sweep deletes every one of these tables the same way: `expires_at < now()`, in
  batches, on the index.
"""

from __future__ import annotations

from alembic import op

revision = "0010_shared_state"
down_revision = "0009_outbox_cursor"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE portal_sessions (
    id_hash          text PRIMARY KEY,            -- sha256 hex of the cookie value, never the value
    realm            text NOT NULL CHECK (realm IN ('customer', 'staff')),
    api_token_sealed text NOT NULL,               -- security/sealed.py, purpose bound to id_hash
    user_id          text NOT NULL DEFAULT '',
    email            text NOT NULL,
    name             text NOT NULL DEFAULT '',
    role             text NOT NULL DEFAULT '',
    flashes          jsonb NOT NULL DEFAULT '[]', -- messages for the next page, [[kind, text], ...]
    created_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    token_expires_at timestamptz NOT NULL,        -- the API token's expiry, less a margin
    expires_at       timestamptz NOT NULL         -- least(last_seen_at + idle timeout, token_expires_at)
);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

CREATE TABLE rate_limit_hits (
    rule       text NOT NULL,
    key        text NOT NULL,
    hit_at     timestamptz NOT NULL,
    expires_at timestamptz NOT NULL                -- hit_at + the rule's window
);
CREATE INDEX rate_limit_hits_window ON rate_limit_hits (rule, key, hit_at);
CREATE INDEX rate_limit_hits_expires ON rate_limit_hits (expires_at);

-- A failed login counts for api/throttle.py's 15-minute window; an OTP failure for the hour
-- of otp/store.py's per-customer budget. Existing rows get the same rule.
ALTER TABLE login_failures ADD COLUMN expires_at timestamptz;
UPDATE login_failures SET expires_at = failed_at + interval '15 minutes';
ALTER TABLE login_failures ALTER COLUMN expires_at SET DEFAULT now() + interval '15 minutes',
                           ALTER COLUMN expires_at SET NOT NULL;
CREATE INDEX login_failures_expires ON login_failures (expires_at);

ALTER TABLE otp_failures ADD COLUMN expires_at timestamptz;
UPDATE otp_failures SET expires_at = failed_at + interval '1 hour';
ALTER TABLE otp_failures ALTER COLUMN expires_at SET DEFAULT now() + interval '1 hour',
                         ALTER COLUMN expires_at SET NOT NULL;
CREATE INDEX otp_failures_expires ON otp_failures (expires_at);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS otp_failures_expires;
ALTER TABLE otp_failures DROP COLUMN IF EXISTS expires_at;
DROP INDEX IF EXISTS login_failures_expires;
ALTER TABLE login_failures DROP COLUMN IF EXISTS expires_at;
DROP TABLE IF EXISTS rate_limit_hits;
DROP TABLE IF EXISTS portal_sessions;
"""


def _run(sql: str) -> None:
    # Straight to the driver: the SQL holds ':' that text() would take for placeholders.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
