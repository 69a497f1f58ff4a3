"""Second factors: TOTP enrolments and recovery codes, for customers and staff.

Revision ID: 0012_totp
Revises: 0009_outbox_cursor

One row per principal and realm in `totp_credentials`: the TOTP secret sealed with
security/sealed.py (purpose "totp-secret"; the CHECK refuses anything that is not a sealed
envelope, so a clear secret cannot be stored even by mistake), `enabled_at` NULL while the
enrolment waits for its first code, and `last_used_step`: the highest RFC 6238 time step this
principal has had accepted. A code is accepted only for a later step, by one conditional
UPDATE, so two concurrent logins with the same code cannot both pass and a code seen once (over
a shoulder, in a log of keystrokes) is spent.

Recovery codes are stored as sha256 hashes of 80-bit random codes, each usable once
(`used_at`). They belong to an enrolment and go with it (ON DELETE CASCADE).

Like `auth_tokens`, a row names its principal by (realm, id) without a foreign key: the two
realms live in two tables.
"""

from __future__ import annotations

from alembic import op

revision = "0012_totp"
down_revision = "0011_retention"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    _run(
        """
        CREATE TABLE totp_credentials (
            realm          text NOT NULL CHECK (realm IN ('customer', 'staff')),
            principal_id   uuid NOT NULL,
            secret_sealed  text NOT NULL CHECK (secret_sealed LIKE 'lfs1.%'),  -- never the secret itself
            created_at     timestamptz NOT NULL DEFAULT now(),
            enabled_at     timestamptz NULL,       -- NULL: pending, waiting for the first code
            last_used_step bigint NULL,            -- highest accepted time step (replay guard)
            PRIMARY KEY (realm, principal_id)
        );

        CREATE TABLE totp_recovery_codes (
            realm        text NOT NULL,
            principal_id uuid NOT NULL,
            code_hash    text NOT NULL CHECK (length(code_hash) = 64),  -- sha256 hex, never the code
            used_at      timestamptz NULL,
            PRIMARY KEY (realm, principal_id, code_hash),
            FOREIGN KEY (realm, principal_id) REFERENCES totp_credentials (realm, principal_id) ON DELETE CASCADE
        );
        """
    )


def downgrade() -> None:
    _run(
        """
        DROP TABLE IF EXISTS totp_recovery_codes;
        DROP TABLE IF EXISTS totp_credentials;
        """
    )
