"""API tables: customers, staff, auth tokens, login failures, idempotency keys, audit log.

Revision ID: 0004_api
Revises: 0003_relay_consumers
"""

from __future__ import annotations

from alembic import op

from ledger.repeatable import apply_file

revision = "0004_api"
down_revision = "0003_relay_consumers"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    # Straight to the driver: the SQL holds ':' and '%' that text() would take for placeholders.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    # The trigger function the audit_log triggers bind (ledger/sql/functions/).
    apply_file(op.get_bind(), "functions/api_audit_log_append_only.sql")
    _run(
        """
        CREATE TABLE customers (
            id            uuid PRIMARY KEY,
            email         text NOT NULL,
            full_name     text NOT NULL,
            password_hash text NOT NULL,            -- argon2id, never the password
            created_at    timestamptz NOT NULL DEFAULT now()
        );
        -- E-mail addresses are compared case-insensitively: Alice@x and alice@x are one person.
        CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
        CREATE INDEX customers_created ON customers (created_at, id);

        CREATE TABLE staff (
            id            uuid PRIMARY KEY,
            email         text NOT NULL,
            password_hash text NOT NULL,
            role          text NOT NULL CHECK (role IN ('operator', 'approver', 'auditor', 'admin')),
            created_at    timestamptz NOT NULL DEFAULT now(),
            created_by    uuid NULL REFERENCES staff (id)
        );
        CREATE UNIQUE INDEX staff_email_key ON staff (lower(email));

        -- Opaque bearer tokens: only their sha256 is stored, so a database dump holds no token.
        CREATE TABLE auth_tokens (
            token_hash   text PRIMARY KEY,
            realm        text NOT NULL CHECK (realm IN ('customer', 'staff')),
            principal_id uuid NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz NOT NULL,
            revoked_at   timestamptz NULL
        );
        CREATE INDEX auth_tokens_principal ON auth_tokens (realm, principal_id);
        CREATE INDEX auth_tokens_expires ON auth_tokens (expires_at);

        -- Sliding window of failed logins, per username and per client address.
        CREATE TABLE login_failures (
            id        bigserial PRIMARY KEY,
            realm     text NOT NULL,
            username  text NOT NULL,
            ip        text NOT NULL,
            failed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_failures_username ON login_failures (realm, username, failed_at);
        CREATE INDEX login_failures_ip ON login_failures (ip, failed_at);

        -- Idempotency-Key records. The row is claimed (INSERT .. ON CONFLICT) before any work,
        -- with the id of the resource the request creates, so a retry reuses that id. A claim is
        -- a lease (locked_until): a request that crashed mid-way is re-taken once it lapses.
        CREATE TABLE idempotency_keys (
            principal        text NOT NULL,         -- 'customer:<uuid>' or 'staff:<uuid>'
            key              text NOT NULL,
            method           text NOT NULL,
            path             text NOT NULL,
            request_hash     text NOT NULL,         -- sha256(method, path, canonical JSON body)
            resource_id      uuid NOT NULL,
            state            text NOT NULL CHECK (state IN ('processing', 'completed')),
            locked_until     timestamptz NOT NULL,
            response_status  integer NULL,
            response_headers jsonb NULL,
            response_body    bytea NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            completed_at     timestamptz NULL,
            expires_at       timestamptz NOT NULL,
            PRIMARY KEY (principal, key),
            CHECK (state = 'processing' OR (response_status IS NOT NULL AND response_body IS NOT NULL))
        );
        CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

        -- Tamper-evident audit trail: each row's hash covers the previous row's hash and the
        -- row's own canonical JSON (see api/audit.py), and the database refuses edits.
        CREATE TABLE audit_log (
            id          bigint PRIMARY KEY,
            at          timestamptz NOT NULL,
            actor_realm text NOT NULL,              -- staff | customer | anonymous | system
            actor_id    text NULL,
            actor_email text NULL,
            action      text NOT NULL,
            outcome     text NOT NULL CHECK (outcome IN ('ok', 'denied')),
            target_type text NULL,
            target_id   text NULL,
            before      jsonb NULL,
            after       jsonb NULL,
            detail      jsonb NULL,
            ip          text NULL,
            prev_hash   text NOT NULL,
            hash        text NOT NULL UNIQUE
        );
        CREATE SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
        CREATE INDEX audit_log_actor ON audit_log (actor_realm, actor_id, id);

        CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION api_audit_log_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION api_audit_log_append_only();
        """
    )


def downgrade() -> None:
    _run(
        """
        DROP TABLE IF EXISTS audit_log;
        DROP FUNCTION IF EXISTS api_audit_log_append_only();
        DROP TABLE IF EXISTS idempotency_keys;
        DROP TABLE IF EXISTS login_failures;
        DROP TABLE IF EXISTS auth_tokens;
        DROP TABLE IF EXISTS staff;
        DROP TABLE IF EXISTS customers;
        """
    )
