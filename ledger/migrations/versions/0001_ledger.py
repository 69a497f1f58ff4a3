"""Ledger schema: accounts, projections, transactions, entries, holds, transfers, outbox,
and the triggers that make the invariants the database's own. The functions (the posting
path, the trigger functions) live in ledger/sql/functions/, one file each (ledger.repeatable).

Revision ID: 0001_ledger
Revises:
Create Date: 2025-01-01

Why so much lives in SQL: a posting must be one round trip to reach thousands per second on
a small machine, and the invariants (append-only entries, balanced transactions, no customer
overdraft, holds that resolve once) must hold against any client, not only this package.

Error codes raised by the functions and triggers (SQLSTATE class "LF", mapped to Python
exceptions by ledger.db.translate_error; DETAIL carries the id or state the caller needs):
    LF001 insufficient funds (detail: account id)
    LF002 account frozen     (detail: account id)
    LF003 account closed     (detail: account id)
    LF004 account not found  (detail: account id)
    LF005 currency mismatch  (detail: account id)
    LF006 unbalanced or malformed legs (detail: currency)
    LF007 hold not pending   (detail: its state, or 'expired' past its deadline)
    LF008 hold not found     (detail: hold id)
    LF009 transfer compare-and-set lost (status or version moved on; caller re-reads)
    LF010 append-only / immutable row changed
    LF011 invalid argument
    LF012 FX quote required  (a cross-currency posting without legs)
    LF013 transfer not found (detail: transfer id)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from ledger.repeatable import apply_file

revision: str = "0001_ledger"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES = r"""
-- Value sets. The columns stay plain text (simple for every client and ORM); their CHECK
-- casts to one of these enums, which refuses any other value. An IN-list CHECK would do the
-- same, but PostgreSQL re-reads each CHECK from its serialized form on every statement, and
-- IN-lists serialize large: on the posting path that was a measurable share of the CPU.
CREATE TYPE ledger_account_kind AS ENUM ('customer', 'settlement', 'fx_liquidity', 'fx_revenue');
CREATE TYPE ledger_account_status AS ENUM ('active', 'frozen', 'closed');
CREATE TYPE ledger_transaction_kind AS ENUM
    ('deposit', 'transfer', 'fx_transfer', 'reversal', 'hold_posting', 'adjustment');
CREATE TYPE ledger_direction AS ENUM ('debit', 'credit');
CREATE TYPE ledger_hold_state AS ENUM ('pending', 'posted', 'voided', 'expired');
CREATE TYPE ledger_transfer_status AS ENUM
    ('pending_otp', 'processing', 'in_review', 'posted', 'failed', 'cancelled', 'expired', 'rejected', 'reversed');
CREATE TYPE ledger_topic AS ENUM ('ledgerflow.transfers', 'ledgerflow.accounts', 'ledgerflow.notifications');

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CONSTRAINT accounts_kind CHECK (kind::ledger_account_kind IS NOT NULL),
    customer_id     uuid,
    currency        text NOT NULL CONSTRAINT accounts_currency CHECK (currency ~ '^[A-Z]{3}$'),
    label           text,
    status          text NOT NULL DEFAULT 'active'
                        CONSTRAINT accounts_status CHECK (status::ledger_account_status IS NOT NULL),
    allow_overdraft boolean NOT NULL DEFAULT false,
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- customers own customer accounts; house accounts belong to nobody
    CONSTRAINT accounts_owner CHECK ((kind = 'customer') = (customer_id IS NOT NULL)),
    -- only house accounts may go below zero
    CONSTRAINT accounts_overdraft_house_only CHECK (NOT allow_overdraft OR kind <> 'customer'),
    -- target of account_balances' composite foreign key (mirror of immutable columns)
    CONSTRAINT accounts_id_currency_overdraft UNIQUE (id, currency, allow_overdraft)
);
-- one house account of each kind per currency: what makes ensure_house_accounts idempotent
CREATE UNIQUE INDEX accounts_house_kind_currency ON accounts (kind, currency) WHERE kind <> 'customer';
CREATE INDEX accounts_customer ON accounts (customer_id, created_at) WHERE customer_id IS NOT NULL;

-- The balance projection, one row per account, updated in the same transaction as the
-- entries. It also mirrors what the posting path must check under the row lock (currency,
-- overdraft flag, status) so that one locked row answers every question.
CREATE TABLE account_balances (
    account_id      uuid PRIMARY KEY,
    currency        text NOT NULL,
    allow_overdraft boolean NOT NULL,
    status          text NOT NULL
                        CONSTRAINT account_balances_status CHECK (status::ledger_account_status IS NOT NULL),
    ledger_minor    bigint NOT NULL DEFAULT 0,
    held_minor      bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 1,
    -- strictly increasing per account: gives entries a total order by (account_id, posted_at)
    last_posted_at  timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_balances_account_fkey FOREIGN KEY (account_id, currency, allow_overdraft)
        REFERENCES accounts (id, currency, allow_overdraft),
    CONSTRAINT account_balances_account_currency UNIQUE (account_id, currency),
    CONSTRAINT account_balances_held_nonnegative CHECK (held_minor >= 0),
    -- invariant 3 as a constraint: whatever path writes, a customer never goes below zero available
    CONSTRAINT account_balances_no_overdraft CHECK (allow_overdraft OR ledger_minor - held_minor >= 0)
) WITH (fillfactor = 50);  -- room on the page for HOT updates: these rows change on every posting

CREATE TABLE ledger_transactions (
    id                 uuid PRIMARY KEY,
    -- the business id (transfer, deposit, reversal id): the same posting twice is one row
    idempotency_key    uuid NOT NULL CONSTRAINT ledger_transactions_idempotency_key UNIQUE,
    kind               text NOT NULL
                           CONSTRAINT ledger_transactions_kind CHECK (kind::ledger_transaction_kind IS NOT NULL),
    transfer_id        uuid,
    description        text,
    external_reference text,
    -- hash of the request, compared when an idempotency key comes back (Formance-style)
    request_hash       text,
    posted_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entries (
    id                  uuid PRIMARY KEY DEFAULT ledger_uuidv7(),
    transaction_id      uuid NOT NULL REFERENCES ledger_transactions (id),
    leg_no              integer NOT NULL,
    account_id          uuid NOT NULL,
    currency            text NOT NULL,
    direction           text NOT NULL CONSTRAINT entries_direction CHECK (direction::ledger_direction IS NOT NULL),
    amount_minor        bigint NOT NULL CONSTRAINT entries_amount_positive CHECK (amount_minor > 0),
    balance_after_minor bigint NOT NULL,
    posted_at           timestamptz NOT NULL,
    -- an entry is in its account's currency (the FK points at the row the poster has locked,
    -- so checking it costs no extra lock)
    CONSTRAINT entries_account_currency_fkey FOREIGN KEY (account_id, currency)
        REFERENCES account_balances (account_id, currency),
    CONSTRAINT entries_transaction_leg UNIQUE (transaction_id, leg_no),
    -- statements and as-of balances walk this index; unique = a total order per account
    CONSTRAINT entries_account_posted_at UNIQUE (account_id, posted_at)
);

CREATE TABLE holds (
    id             uuid PRIMARY KEY,
    account_id     uuid NOT NULL,
    currency       text NOT NULL,
    amount_minor   bigint NOT NULL CONSTRAINT holds_amount_positive CHECK (amount_minor > 0),
    state          text NOT NULL DEFAULT 'pending'
                       CONSTRAINT holds_state CHECK (state::ledger_hold_state IS NOT NULL),
    transfer_id    uuid,
    transaction_id uuid REFERENCES ledger_transactions (id),
    expires_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    CONSTRAINT holds_account_currency_fkey FOREIGN KEY (account_id, currency)
        REFERENCES account_balances (account_id, currency),
    -- exactly one state: resolved iff not pending; posted iff it has the posting transaction
    CONSTRAINT holds_resolved_iff_not_pending CHECK ((state = 'pending') = (resolved_at IS NULL)),
    CONSTRAINT holds_posted_iff_transaction CHECK ((state = 'posted') = (transaction_id IS NOT NULL))
) WITH (fillfactor = 80);
CREATE INDEX holds_account_created ON holds (account_id, created_at);
-- not filtered on state, so that resolving a hold stays a HOT update
CREATE INDEX holds_expires_at ON holds (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE transfers (
    id                       uuid PRIMARY KEY,
    customer_id              uuid NOT NULL,
    source_account_id        uuid NOT NULL,
    destination_account_id   uuid NOT NULL REFERENCES accounts (id),
    amount_minor             bigint NOT NULL CONSTRAINT transfers_amount_positive CHECK (amount_minor > 0),
    currency                 text NOT NULL,
    source_currency          text NOT NULL,
    destination_currency     text NOT NULL,
    source_amount_minor      bigint NOT NULL
                                 CONSTRAINT transfers_source_amount_positive CHECK (source_amount_minor > 0),
    destination_amount_minor bigint
                                 CONSTRAINT transfers_destination_amount_positive CHECK (destination_amount_minor > 0),
    status                   text NOT NULL
                                 CONSTRAINT transfers_status CHECK (status::ledger_transfer_status IS NOT NULL),
    failure_reason           text,
    description              text,
    fx_quote_id              text,
    fx_rate                  numeric,
    fx_spread_bps            integer CONSTRAINT transfers_spread_range CHECK (fx_spread_bps BETWEEN 0 AND 9999),
    fx_spread_minor          bigint,
    hold_id                  uuid REFERENCES holds (id),
    -- deferred: the posting functions set these before inserting the transaction row (the
    -- compare-and-set on the transfer comes first); checked at commit
    transaction_id           uuid REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
    reversal_transaction_id  uuid REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
    workflow_id              text NOT NULL,
    version                  bigint NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- the source FK targets the projection row the hold placement has just locked
    CONSTRAINT transfers_source_account_fkey FOREIGN KEY (source_account_id, source_currency)
        REFERENCES account_balances (account_id, currency),
    CONSTRAINT transfers_distinct_accounts CHECK (source_account_id <> destination_account_id),
    CONSTRAINT transfers_fixed_side CHECK (currency IN (source_currency, destination_currency)),
    CONSTRAINT transfers_same_currency_amounts CHECK (
        source_currency <> destination_currency
        OR (source_amount_minor = amount_minor AND destination_amount_minor = amount_minor)),
    CONSTRAINT transfers_posted_has_transaction CHECK (
        status NOT IN ('posted', 'reversed')
        OR (transaction_id IS NOT NULL AND destination_amount_minor IS NOT NULL
            AND (source_currency = destination_currency OR fx_rate IS NOT NULL))),
    CONSTRAINT transfers_reversed_has_reversal CHECK ((status = 'reversed') = (reversal_transaction_id IS NOT NULL))
) WITH (fillfactor = 80);  -- status changes are HOT updates (no index covers status)
CREATE INDEX transfers_customer_created ON transfers (customer_id, created_at DESC, id DESC);

CREATE TABLE outbox (
    id           uuid PRIMARY KEY,  -- the CloudEvents id, derived from the business id
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    topic        text NOT NULL CONSTRAINT outbox_topic CHECK (topic::ledger_topic IS NOT NULL),
    key          text NOT NULL,
    type         text NOT NULL,
    source       text NOT NULL,
    subject      text,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    parked       boolean NOT NULL DEFAULT false,
    -- transfer.* -> ledgerflow.transfers, account.* -> ledgerflow.accounts, notification.* -> ...notifications
    CONSTRAINT outbox_type_topic CHECK (topic = 'ledgerflow.' || split_part(type, '.', 1) || 's'),
    CONSTRAINT outbox_envelope CHECK (
        payload ->> 'specversion' = '1.0' AND payload ->> 'id' = id::text AND payload ->> 'type' = type)
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL AND NOT parked;
CREATE INDEX outbox_key ON outbox (key, seq);
"""

TRIGGERS = r"""
-- Append-only tables: ledger_refuse_change refuses UPDATE, DELETE and TRUNCATE outright.
-- Statement level, so even an UPDATE or DELETE matching no row is refused.
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER account_balances_no_delete BEFORE DELETE ON account_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER account_balances_no_truncate BEFORE TRUNCATE ON account_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Invariant 2, checked by the database for every writer: the rows of each INSERT statement
-- on entries net to zero per transaction and currency. A transaction is the sum of such
-- zero-sum contributions, so it always balances; and the check reads only the statement's
-- own rows (the transition table), not the entries table. (A transaction's legs are
-- therefore written by one statement, as ledger_apply_legs does.)
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_balanced();

-- Invariant 8: a hold leaves 'pending' once, and what it holds never changes.
CREATE TRIGGER holds_guard BEFORE UPDATE ON holds FOR EACH ROW EXECUTE FUNCTION ledger_holds_guard();

-- What an account is (kind, currency, owner, overdraft flag) never changes; status does.
CREATE TRIGGER accounts_guard BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();

-- Every account gets its projection row, and the row's status follows the account's. The
-- status update takes the projection row lock, so it queues behind in-flight postings and
-- every posting after it sees the new status.
CREATE TRIGGER accounts_sync_balance AFTER INSERT OR UPDATE OF status ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_sync_balance();
"""

DROP = """
DROP TABLE IF EXISTS outbox, transfers, holds, entries, ledger_transactions, account_balances, accounts CASCADE;
DROP TYPE IF EXISTS ledger_account_kind, ledger_account_status, ledger_transaction_kind, ledger_direction,
    ledger_hold_state, ledger_transfer_status, ledger_topic;
DROP FUNCTION IF EXISTS ledger_reverse_transfer, ledger_void_transfer, ledger_post_transfer, ledger_create_transfer,
    ledger_post, ledger_expire_due_holds, ledger_release_hold, ledger_release_pending_hold, ledger_place_hold,
    ledger_apply_legs, ledger_account_refusal, ledger_hold_refusal, ledger_insert_event, ledger_rfc3339,
    ledger_transfer_envelope, ledger_legs_json,
    ledger_accounts_sync_balance,
    ledger_accounts_guard, ledger_holds_guard, ledger_entries_balanced, ledger_refuse_change, ledger_uuidv7;
"""


def _run(sql: str) -> None:
    # Straight to the driver with no parameters: the SQL is full of ':' and '%' that
    # text() or the driver's paramstyle would otherwise take for placeholders.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


# The functions this revision's own DDL needs (a column default, the trigger bindings): their
# files under ledger/sql/ run first. Every other function comes from its file after the
# versioned steps (ledger.repeatable).
NEEDED_FILES = (
    "functions/ledger_uuidv7.sql",
    "functions/ledger_refuse_change.sql",
    "functions/ledger_entries_balanced.sql",
    "functions/ledger_holds_guard.sql",
    "functions/ledger_accounts_guard.sql",
    "functions/ledger_accounts_sync_balance.sql",
)


def upgrade() -> None:
    for path in NEEDED_FILES:
        apply_file(op.get_bind(), path)
    _run(TABLES)
    _run(TRIGGERS)


def downgrade() -> None:
    _run(DROP)
