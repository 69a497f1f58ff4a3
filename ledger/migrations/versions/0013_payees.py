"""Account numbers, trusted payees, standing orders, and how each transfer was authorised.

Revision ID: 0013_payees
Revises: 0009_outbox_cursor

- `accounts.account_number`: `LF` + two ISO 7064 mod 97-10 check digits (the IBAN check) +
  16 digits: the bank code `1000` and a 12-digit serial from a sequence. A sequence never
  hands a value out twice (NO CYCLE), so a number is never reused, even after an account is
  closed. Assigned by the column default at insert (every writer gets one, house accounts
  too), backfilled here for existing accounts, unique, and immutable once set.
- `payees`: a customer's payees (PSD2 RTS Art. 13 trusted beneficiaries), `pending_otp` until
  the customer confirms them with an OTP bound to the number and the name, then `trusted`;
  deleting one keeps the row (`deleted`) so past transfers still name it.
- `standing_orders` and `standing_order_runs`: recurring transfers (RTS Art. 14) and one row
  per order and scheduled date. Its primary key is invariant 12 in the database: one run,
  hence one transfer id, per order per date.
- `transfer_sca`: the SCA exemption a transfer was made under (`trusted_payee` or
  `recurring`), with the payee or order it relied on. A transfer without a row here was
  authorised with an OTP. Kept apart from `transfers` so the posting functions, which
  return `transfers` rows, are untouched.

OTP challenges of payees and standing orders live in `otp_challenges` like a transfer's,
keyed by the payee or order id (the column is named `transfer_id` for history; it has no
foreign key, and the ids are UUIDv7, unique across all three).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from ledger.repeatable import apply_file

revision: str = "0013_payees"
down_revision: str | Sequence[str] | None = "0012_totp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- 12-digit serials after the bank code; NO CYCLE: running out is an error, never a reuse.
CREATE SEQUENCE account_number_seq AS bigint MINVALUE 1 MAXVALUE 999999999999 NO CYCLE;

ALTER TABLE accounts ADD COLUMN account_number text;
-- Existing accounts in the order they were opened.
UPDATE accounts a SET account_number = ledger_account_number(o.serial)
  FROM (SELECT id, nextval('account_number_seq') AS serial
          FROM (SELECT id FROM accounts ORDER BY created_at, id) ordered) o
 WHERE a.id = o.id;
ALTER TABLE accounts ALTER COLUMN account_number SET DEFAULT ledger_account_number(nextval('account_number_seq'));
ALTER TABLE accounts ALTER COLUMN account_number SET NOT NULL;
ALTER TABLE accounts ADD CONSTRAINT accounts_account_number_format CHECK (account_number ~ '^LF[0-9]{18}$');
ALTER TABLE accounts ADD CONSTRAINT accounts_account_number_key UNIQUE (account_number);

-- A number, once given, stays with its account (a person may have written it down).
CREATE TRIGGER accounts_number_guard BEFORE UPDATE OF account_number ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_number_guard();

CREATE TABLE payees (
    id             uuid PRIMARY KEY,
    customer_id    uuid NOT NULL REFERENCES customers (id),
    account_id     uuid NOT NULL REFERENCES accounts (id),
    account_number text NOT NULL,
    name           text NOT NULL,
    status         text NOT NULL DEFAULT 'pending_otp'
                       CONSTRAINT payees_status CHECK (status IN ('pending_otp', 'trusted', 'deleted')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    trusted_at     timestamptz,
    deleted_at     timestamptz
);
CREATE INDEX payees_by_customer ON payees (customer_id, created_at) WHERE status <> 'deleted';

CREATE TABLE standing_orders (
    id                uuid PRIMARY KEY,
    customer_id       uuid NOT NULL REFERENCES customers (id),
    source_account_id uuid NOT NULL REFERENCES accounts (id),
    payee_id          uuid NOT NULL REFERENCES payees (id),
    amount_minor      bigint NOT NULL CONSTRAINT standing_orders_amount CHECK (amount_minor > 0),
    currency          text NOT NULL CONSTRAINT standing_orders_currency CHECK (currency ~ '^[A-Z]{3}$'),
    frequency         text NOT NULL
                          CONSTRAINT standing_orders_frequency CHECK (frequency IN ('daily', 'weekly', 'monthly')),
    start_date        date NOT NULL,
    end_date          date CONSTRAINT standing_orders_dates CHECK (end_date IS NULL OR end_date >= start_date),
    description       text,
    status            text NOT NULL DEFAULT 'pending_otp'
                          CONSTRAINT standing_orders_status
                          CHECK (status IN ('pending_otp', 'active', 'paused', 'cancelled')),
    version           bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX standing_orders_by_customer ON standing_orders (customer_id, created_at);

-- One row per order and scheduled date (invariant 12): the transfer id is derived from both.
-- `status` is the run's own outcome when no transfer row exists (refused at initiation,
-- e.g. insufficient_funds, or skipped); otherwise the transfer's status is the run's.
CREATE TABLE standing_order_runs (
    standing_order_id uuid NOT NULL REFERENCES standing_orders (id),
    scheduled_for     date NOT NULL,
    transfer_id       uuid NOT NULL UNIQUE,
    status            text NOT NULL DEFAULT 'started'
                          CONSTRAINT standing_order_runs_status CHECK (status IN ('started', 'failed')),
    failure_reason    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (standing_order_id, scheduled_for)
);

CREATE TABLE transfer_sca (
    transfer_id       uuid PRIMARY KEY,
    sca_exemption     text NOT NULL
                          CONSTRAINT transfer_sca_exemption CHECK (sca_exemption IN ('trusted_payee', 'recurring')),
    payee_id          uuid REFERENCES payees (id),
    standing_order_id uuid REFERENCES standing_orders (id),
    created_at        timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE transfer_sca;
DROP TABLE standing_order_runs;
DROP TABLE standing_orders;
DROP TABLE payees;
DROP TRIGGER accounts_number_guard ON accounts;
DROP FUNCTION ledger_account_number_guard();
ALTER TABLE accounts DROP COLUMN account_number;
DROP FUNCTION ledger_account_number(bigint);
DROP SEQUENCE account_number_seq;
"""


def _run(sql: str) -> None:
    # Straight to the driver: no parameters, so `%` in the SQL is not taken for a placeholder.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    # What this revision's DDL calls: the number function (the data move and the column
    # default) and the trigger function (ledger/sql/functions/).
    apply_file(op.get_bind(), "functions/ledger_account_number.sql")
    apply_file(op.get_bind(), "functions/ledger_account_number_guard.sql")
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
