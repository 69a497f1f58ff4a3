"""Ledger schema: accounts, projections, transactions, entries, holds, transfers, outbox,
the triggers that make the invariants the database's own, and the posting functions.

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

revision: str = "0001_ledger"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UUIDV7_NATIVE = """
CREATE FUNCTION ledger_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT uuidv7() $$;
"""

# Before PostgreSQL 18 there is no uuidv7(): build one from the clock and gen_random_uuid().
UUIDV7_FALLBACK = """
CREATE FUNCTION ledger_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;
"""

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
-- Refuses the operation outright: used for append-only tables (UPDATE, DELETE, TRUNCATE).
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: its rows are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LF010', DETAIL = TG_TABLE_NAME;
END $$;

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
CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    SELECT n.transaction_id, n.currency INTO v
      FROM new_entries n
     GROUP BY n.transaction_id, n.currency
    HAVING sum(CASE n.direction WHEN 'credit' THEN n.amount_minor ELSE -n.amount_minor END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction % does not balance in %', v.transaction_id, v.currency
            USING ERRCODE = 'LF006', DETAIL = coalesce(v.currency, '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_balanced();

-- Invariant 8: a hold leaves 'pending' once, and what it holds never changes.
CREATE FUNCTION ledger_holds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'hold % is already %', OLD.id, OLD.state
            USING ERRCODE = 'LF007', DETAIL = coalesce(OLD.state, '');
    END IF;
    IF NEW.id <> OLD.id OR NEW.account_id <> OLD.account_id OR NEW.currency <> OLD.currency
       OR NEW.amount_minor <> OLD.amount_minor OR NEW.created_at <> OLD.created_at
       OR NEW.transfer_id IS DISTINCT FROM OLD.transfer_id THEN
        RAISE EXCEPTION 'hold %: only its state may change', OLD.id USING ERRCODE = 'LF010', DETAIL = 'holds';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER holds_guard BEFORE UPDATE ON holds FOR EACH ROW EXECUTE FUNCTION ledger_holds_guard();

-- What an account is (kind, currency, owner, overdraft flag) never changes; status does.
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.currency <> OLD.currency
       OR NEW.allow_overdraft <> OLD.allow_overdraft OR NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        RAISE EXCEPTION 'account %: id, kind, currency, owner and overdraft flag are immutable', OLD.id
            USING ERRCODE = 'LF010', DETAIL = 'accounts';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_guard BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();

-- Every account gets its projection row, and the row's status follows the account's. The
-- status update takes the projection row lock, so it queues behind in-flight postings and
-- every posting after it sees the new status.
CREATE FUNCTION ledger_accounts_sync_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_balances (account_id, currency, allow_overdraft, status)
        VALUES (NEW.id, NEW.currency, NEW.allow_overdraft, NEW.status);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        UPDATE account_balances SET status = NEW.status, updated_at = now() WHERE account_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_sync_balance AFTER INSERT OR UPDATE OF status ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_sync_balance();
"""

FUNCTIONS = r"""
-- RFC 3339 UTC text of a timestamp, whatever the session's TimeZone.
CREATE FUNCTION ledger_rfc3339(p_at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- One outbox row from {id, topic, key, type, source, subject, payload} (NULL: nothing). A
-- retried call inserts nothing new: ids derive from business ids (ON CONFLICT DO NOTHING).
-- With p_at, the envelope's `time` becomes the database's transaction time.
CREATE FUNCTION ledger_insert_event(p_event jsonb, p_at timestamptz) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_event IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES ((p_event ->> 'id')::uuid, p_event ->> 'topic', p_event ->> 'key', p_event ->> 'type',
            p_event ->> 'source', p_event ->> 'subject',
            CASE WHEN p_at IS NULL THEN p_event -> 'payload'
                 ELSE (p_event -> 'payload') || jsonb_build_object('time', ledger_rfc3339(p_at)) END)
    ON CONFLICT (id) DO NOTHING;
END $fn$;

-- Raise the error that explains why a hold could not be posted: LF008 (no such hold) or
-- LF007 (not pending, or past its deadline: detail 'expired'). Cold path only.
CREATE FUNCTION ledger_hold_refusal(p_hold_id uuid) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_row record;
BEGIN
    SELECT h.state, h.expires_at INTO v_row FROM holds h WHERE h.id = p_hold_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold % not found', p_hold_id USING ERRCODE = 'LF008', DETAIL = coalesce(p_hold_id::text, '');
    ELSIF v_row.state = 'pending' THEN
        RAISE EXCEPTION 'hold % expired at %', p_hold_id, v_row.expires_at USING ERRCODE = 'LF007', DETAIL = 'expired';
    END IF;
    RAISE EXCEPTION 'hold % is %', p_hold_id, v_row.state USING ERRCODE = 'LF007', DETAIL = coalesce(v_row.state, '');
END $fn$;

-- Raise the error that explains why an account refused a change: LF004 (missing), LF002 /
-- LF003 (frozen / closed), LF005 (other currency) or LF001 (not enough available). Cold path.
CREATE FUNCTION ledger_account_refusal(p_account_id uuid, p_currency text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_row record;
BEGIN
    SELECT b.currency, b.status INTO v_row FROM account_balances b WHERE b.account_id = p_account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % not found', p_account_id
            USING ERRCODE = 'LF004', DETAIL = coalesce(p_account_id::text, '');
    ELSIF v_row.status <> 'active' THEN
        RAISE EXCEPTION 'account % is %', p_account_id, v_row.status
            USING ERRCODE = CASE v_row.status WHEN 'frozen' THEN 'LF002' ELSE 'LF003' END,
                  DETAIL = coalesce(p_account_id::text, '');
    ELSIF p_currency IS NOT NULL AND v_row.currency <> p_currency THEN
        RAISE EXCEPTION 'account % is in %, not %', p_account_id, v_row.currency, p_currency
            USING ERRCODE = 'LF005', DETAIL = coalesce(p_account_id::text, '');
    END IF;
    RAISE EXCEPTION 'insufficient funds in account %', p_account_id
        USING ERRCODE = 'LF001', DETAIL = coalesce(p_account_id::text, '');
END $fn$;

-- The heart of every posting: legs given as parallel arrays (signed amounts: credit > 0,
-- debit < 0). For each touched account, in account-id order (every writer locks in this
-- order, so posters sharing accounts queue instead of deadlocking), one conditional UPDATE
-- applies the account's net delta, refusing an inactive account and, with the overdraft
-- guard, a customer account that would end below zero available. Then one INSERT writes the
-- entries with their running balance. p_release_* gives back the amount of the hold being
-- posted in the same update. The balance per currency is checked by the entries_balanced
-- trigger, each leg's currency by the entries foreign key.
CREATE FUNCTION ledger_apply_legs(
    p_transaction_id uuid,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_release_account_id uuid DEFAULT NULL,
    p_release_minor bigint DEFAULT 0
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_legs integer := coalesce(cardinality(p_account_ids), 0);
    v_row record;
    v_release bigint;
    v_ledger bigint;
    v_last timestamptz;
    -- per touched account (parallel arrays): id, running balance, next entry time
    v_acc uuid[] := '{}';
    v_running bigint[] := '{}';
    v_next_at timestamptz[] := '{}';
    -- per leg
    v_balance_after bigint[] := '{}';
    v_posted_at timestamptz[] := '{}';
    v_j integer;
BEGIN
    IF v_legs < 2 OR coalesce(cardinality(p_currencies), 0) <> v_legs
       OR coalesce(cardinality(p_amounts), 0) <> v_legs
       OR (p_release_account_id IS NOT NULL AND NOT p_release_account_id = ANY (p_account_ids)) THEN
        RAISE EXCEPTION 'transaction %: needs two or more legs, each with a currency and an amount, '
                        'and the held account among them', p_transaction_id
            USING ERRCODE = 'LF006', DETAIL = '';
    END IF;

    FOR v_row IN
        SELECT l.account_id, sum(l.amount)::bigint AS delta, count(*)::integer AS n
          FROM unnest(p_account_ids, p_amounts) AS l(account_id, amount)
         GROUP BY l.account_id
         ORDER BY l.account_id
    LOOP
        v_release := CASE WHEN v_row.account_id = p_release_account_id THEN p_release_minor ELSE 0 END;
        UPDATE account_balances b
           SET ledger_minor = b.ledger_minor + v_row.delta,
               held_minor = b.held_minor - v_release,
               version = b.version + 1,
               -- strictly after the account's previous entry, one microsecond per leg
               last_posted_at = greatest(clock_timestamp(), b.last_posted_at + interval '1 microsecond')
                   + (v_row.n - 1) * interval '1 microsecond',
               updated_at = now()
         WHERE b.account_id = v_row.account_id
           AND b.status = 'active'
           -- the overdraft guard: a customer's available balance may not end below zero
           AND (b.allow_overdraft OR v_row.delta >= 0
                OR b.ledger_minor + v_row.delta - (b.held_minor - v_release) >= 0)
        RETURNING b.ledger_minor - v_row.delta, b.last_posted_at - (v_row.n - 1) * interval '1 microsecond'
             INTO v_ledger, v_last;
        IF NOT FOUND THEN
            PERFORM ledger_account_refusal(v_row.account_id, NULL);
        END IF;
        v_acc := v_acc || v_row.account_id;
        v_running := v_running || v_ledger;
        v_next_at := v_next_at || v_last;
    END LOOP;

    -- running balance and time of each leg, in leg order
    FOR i IN 1 .. v_legs LOOP
        v_j := array_position(v_acc, p_account_ids[i]);
        v_running[v_j] := v_running[v_j] + p_amounts[i];
        v_balance_after := v_balance_after || v_running[v_j];
        v_posted_at := v_posted_at || v_next_at[v_j];
        v_next_at[v_j] := v_next_at[v_j] + interval '1 microsecond';
    END LOOP;

    INSERT INTO entries (transaction_id, leg_no, account_id, currency, direction, amount_minor,
                         balance_after_minor, posted_at)
    SELECT p_transaction_id, l.ord::integer, l.account_id, l.currency,
           CASE WHEN l.amount > 0 THEN 'credit' ELSE 'debit' END, abs(l.amount), l.balance_after, l.posted_at
      FROM unnest(p_account_ids, p_currencies, p_amounts, v_balance_after, v_posted_at) WITH ORDINALITY
           AS l(account_id, currency, amount, balance_after, posted_at, ord);
END $fn$;

-- Reserve p_amount_minor on an account (available drops, ledger does not). The conditional
-- UPDATE takes the row lock and checks status, currency and funds on the latest row
-- version, so concurrent holds on one account queue and none overdraws.
CREATE FUNCTION ledger_place_hold(
    p_hold_id uuid,
    p_account_id uuid,
    p_currency text,
    p_amount_minor bigint,
    p_expires_at timestamptz,
    p_transfer_id uuid
) RETURNS SETOF holds LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM holds h WHERE h.id = p_hold_id;
    IF FOUND THEN
        RETURN;  -- idempotent by hold id
    END IF;
    IF p_amount_minor IS NULL OR p_amount_minor <= 0 THEN
        RAISE EXCEPTION 'a hold must be positive' USING ERRCODE = 'LF011', DETAIL = 'amount_minor';
    END IF;
    UPDATE account_balances b
       SET held_minor = b.held_minor + p_amount_minor, version = b.version + 1, updated_at = now()
     WHERE b.account_id = p_account_id AND b.currency = p_currency AND b.status = 'active'
       AND (b.allow_overdraft OR b.ledger_minor - b.held_minor >= p_amount_minor);
    IF NOT FOUND THEN
        PERFORM ledger_account_refusal(p_account_id, p_currency);
    END IF;
    RETURN QUERY
        INSERT INTO holds (id, account_id, currency, amount_minor, transfer_id, expires_at)
        VALUES (p_hold_id, p_account_id, p_currency, p_amount_minor, p_transfer_id, p_expires_at)
        RETURNING *;
END $fn$;

-- Move a pending hold to p_state (voided or expired) and give its amount back; returns
-- whether this call did it. Never raises on a hold that is no longer pending.
CREATE FUNCTION ledger_release_pending_hold(p_hold_id uuid, p_state text, p_at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    v_account uuid;
    v_amount bigint;
BEGIN
    IF p_state NOT IN ('voided', 'expired') THEN
        RAISE EXCEPTION 'a hold is released as voided or expired, not %', p_state
            USING ERRCODE = 'LF011', DETAIL = 'state';
    END IF;
    UPDATE holds h SET state = p_state, resolved_at = p_at
     WHERE h.id = p_hold_id AND h.state = 'pending'
    RETURNING h.account_id, h.amount_minor INTO v_account, v_amount;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE account_balances b
       SET held_minor = b.held_minor - v_amount, version = b.version + 1, updated_at = now()
     WHERE b.account_id = v_account;
    RETURN true;
END $fn$;

-- Void or expire one hold. Doing it twice is a no-op; any other state raises LF007.
CREATE FUNCTION ledger_release_hold(p_hold_id uuid, p_state text) RETURNS SETOF holds
LANGUAGE plpgsql AS $fn$
DECLARE
    v_state text;
BEGIN
    IF NOT ledger_release_pending_hold(p_hold_id, p_state, now()) THEN
        SELECT h.state INTO v_state FROM holds h WHERE h.id = p_hold_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'hold % not found', p_hold_id
                USING ERRCODE = 'LF008', DETAIL = coalesce(p_hold_id::text, '');
        ELSIF v_state <> p_state THEN
            RAISE EXCEPTION 'hold % is %, cannot become %', p_hold_id, v_state, p_state
                USING ERRCODE = 'LF007', DETAIL = v_state;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM holds h WHERE h.id = p_hold_id;
END $fn$;

-- The sweeper: expire up to p_limit pending holds past their deadline. Due holds are taken
-- with SKIP LOCKED (a hold being posted right now is left alone) and their projection rows
-- locked in account order before any change, like every other writer.
CREATE FUNCTION ledger_expire_due_holds(p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    v_ids uuid[];
BEGIN
    SELECT coalesce(array_agg(d.id), '{}') INTO v_ids
      FROM (SELECT h.id FROM holds h
             WHERE h.state = 'pending' AND h.expires_at <= p_now
             ORDER BY h.expires_at LIMIT p_limit
               FOR UPDATE SKIP LOCKED) d;
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM account_balances b
     WHERE b.account_id IN (SELECT h.account_id FROM holds h WHERE h.id = ANY (v_ids))
     ORDER BY b.account_id FOR UPDATE;
    UPDATE account_balances b
       SET held_minor = b.held_minor - s.total, version = b.version + 1, updated_at = now()
      FROM (SELECT h.account_id, sum(h.amount_minor)::bigint AS total FROM holds h
             WHERE h.id = ANY (v_ids) GROUP BY h.account_id) s
     WHERE b.account_id = s.account_id;
    UPDATE holds h SET state = 'expired', resolved_at = p_now WHERE h.id = ANY (v_ids);
    RETURN cardinality(v_ids);
END $fn$;

-- Generic posting (deposits, hold postings, adjustments): idempotent by p_idempotency_key.
-- A replay writes nothing and returns the first transaction (replayed = true) with the
-- request hash it was made with, so the caller can tell a retry from a reused key.
CREATE FUNCTION ledger_post(
    p_transaction_id uuid,
    p_idempotency_key uuid,
    p_kind text,
    p_transfer_id uuid,
    p_description text,
    p_external_reference text,
    p_request_hash text,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_hold_id uuid,
    p_event jsonb
) RETURNS TABLE (transaction_id uuid, posted_at timestamptz, replayed boolean, request_hash text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_now timestamptz := now();
    v_release_account uuid;
    v_release_minor bigint := 0;
BEGIN
    INSERT INTO ledger_transactions AS t
           (id, idempotency_key, kind, transfer_id, description, external_reference, request_hash, posted_at)
    VALUES (p_transaction_id, p_idempotency_key, p_kind, p_transfer_id, p_description, p_external_reference,
            p_request_hash, v_now)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT t.id, t.posted_at, true, t.request_hash
                       FROM ledger_transactions t WHERE t.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;
    IF p_hold_id IS NOT NULL THEN
        UPDATE holds h SET state = 'posted', transaction_id = p_transaction_id, resolved_at = v_now
         WHERE h.id = p_hold_id AND h.state = 'pending' AND (h.expires_at IS NULL OR h.expires_at > v_now)
        RETURNING h.account_id, h.amount_minor INTO v_release_account, v_release_minor;
        IF NOT FOUND THEN
            PERFORM ledger_hold_refusal(p_hold_id);
        END IF;
    END IF;
    PERFORM ledger_insert_event(p_event, v_now);
    PERFORM ledger_apply_legs(p_transaction_id, p_account_ids, p_currencies, p_amounts,
                              v_release_account, v_release_minor);
    RETURN QUERY SELECT p_transaction_id, v_now, false, p_request_hash;
END $fn$;

-- The CloudEvents envelope of a transfer event, its data built from the transfer row: one
-- definition for every transfer event, whichever function writes it. Rates are decimal
-- strings, never JSON numbers.
CREATE FUNCTION ledger_transfer_envelope(p_event_id uuid, p_type text, t transfers, p_at timestamptz, p_extra jsonb)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'specversion', '1.0',
        'id', p_event_id,
        'source', '/ledgerflow/ledger',
        'type', p_type,
        'subject', t.id,
        'time', ledger_rfc3339(p_at),
        'datacontenttype', 'application/json',
        'data', jsonb_build_object(
            'transfer_id', t.id,
            'status', t.status,
            'customer_id', t.customer_id,
            'source_account_id', t.source_account_id,
            'destination_account_id', t.destination_account_id,
            'amount_minor', t.amount_minor,
            'currency', t.currency,
            'source_amount_minor', t.source_amount_minor,
            'source_currency', t.source_currency,
            'destination_amount_minor', t.destination_amount_minor,
            'destination_currency', t.destination_currency,
            'fx', CASE WHEN t.source_currency = t.destination_currency THEN NULL ELSE jsonb_build_object(
                      'quote_id', t.fx_quote_id,
                      'rate', t.fx_rate::text,
                      'spread_bps', t.fx_spread_bps,
                      'spread_minor', t.fx_spread_minor,
                      'source_currency', t.source_currency,
                      'destination_currency', t.destination_currency) END,
            'failure_reason', t.failure_reason,
            'description', t.description,
            'hold_id', t.hold_id,
            'transaction_id', t.transaction_id,
            'workflow_id', t.workflow_id,
            'version', t.version
        ) || coalesce(p_extra, '{}'::jsonb))
$$;

-- The legs of a transaction as the JSON array events carry.
CREATE FUNCTION ledger_legs_json(p_account_ids uuid[], p_currencies text[], p_amounts bigint[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'account_id', l.account_id,
               'direction', CASE WHEN l.amount > 0 THEN 'credit' ELSE 'debit' END,
               'amount_minor', abs(l.amount),
               'currency', l.currency) ORDER BY l.ord)
      FROM unnest(p_account_ids, p_currencies, p_amounts) WITH ORDINALITY AS l(account_id, currency, amount, ord)
$$;

-- Create a transfer in pending_otp with its hold and its transfer.initiated event, in one
-- transaction. The caller validated the request and checked that the id is new; a
-- concurrent twin fails on the primary key and the caller reads the winner. The source's
-- projection row is locked last (the event is written first), so that a hot source account
-- stays locked only for the hold and the two inserts that reference it.
CREATE FUNCTION ledger_create_transfer(
    p_transfer_id uuid,
    p_customer_id uuid,
    p_source_account_id uuid,
    p_destination_account_id uuid,
    p_amount_minor bigint,
    p_currency text,
    p_source_currency text,
    p_destination_currency text,
    p_source_amount_minor bigint,
    p_destination_amount_minor bigint,
    p_fx_quote_id text,
    p_fx_rate numeric,
    p_fx_spread_bps integer,
    p_fx_spread_minor bigint,
    p_description text,
    p_hold_id uuid,
    p_hold_expires_at timestamptz,
    p_workflow_id text,
    p_event_id uuid
) RETURNS SETOF transfers LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := now();
    v_t transfers;
BEGIN
    v_t.id := p_transfer_id;
    v_t.customer_id := p_customer_id;
    v_t.source_account_id := p_source_account_id;
    v_t.destination_account_id := p_destination_account_id;
    v_t.amount_minor := p_amount_minor;
    v_t.currency := p_currency;
    v_t.source_currency := p_source_currency;
    v_t.destination_currency := p_destination_currency;
    v_t.source_amount_minor := p_source_amount_minor;
    v_t.destination_amount_minor := p_destination_amount_minor;
    v_t.status := 'pending_otp';
    v_t.description := p_description;
    v_t.fx_quote_id := p_fx_quote_id;
    v_t.fx_rate := p_fx_rate;
    v_t.fx_spread_bps := p_fx_spread_bps;
    v_t.fx_spread_minor := p_fx_spread_minor;
    v_t.hold_id := p_hold_id;
    v_t.workflow_id := p_workflow_id;
    v_t.version := 1;
    v_t.created_at := v_now;
    v_t.updated_at := v_now;
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, 'transfer.initiated', '/ledgerflow/ledger',
            v_t.id::text, ledger_transfer_envelope(p_event_id, 'transfer.initiated', v_t, v_now, NULL))
    ON CONFLICT (id) DO NOTHING;
    -- The hold: conditional UPDATE (row lock, status, currency, funds), then its row.
    UPDATE account_balances b
       SET held_minor = b.held_minor + p_source_amount_minor, version = b.version + 1, updated_at = v_now
     WHERE b.account_id = p_source_account_id AND b.currency = p_source_currency AND b.status = 'active'
       AND (b.allow_overdraft OR b.ledger_minor - b.held_minor >= p_source_amount_minor);
    IF NOT FOUND THEN
        PERFORM ledger_account_refusal(p_source_account_id, p_source_currency);
    END IF;
    INSERT INTO holds (id, account_id, currency, amount_minor, transfer_id, expires_at, created_at)
    VALUES (p_hold_id, p_source_account_id, p_source_currency, p_source_amount_minor, p_transfer_id,
            p_hold_expires_at, v_now);
    INSERT INTO transfers SELECT (v_t).*;
    RETURN NEXT v_t;
END $fn$;

-- Post a transfer: its hold becomes the legs, in ONE transaction with the projection, the
-- status (compare-and-set: 'processing' -> 'posted', and on p_expected_version when given),
-- the ledger transaction keyed on the transfer id, and the transfer.posted event.
-- With p_account_ids NULL (the hot path: one round trip, nothing read first) the legs of a
-- same-currency transfer come from its row: debit the source, credit the destination, the
-- amount the caller validated at creation; a cross-currency transfer then raises LF012 (the
-- caller computes its FX legs and passes them). Returns the transfer row after the call: if
-- it was posted before, unchanged (its transaction_id is not p_transaction_id: a replay).
-- Raises LF013 (no such transfer), LF009 (not processing, or version moved; detail: status).
CREATE FUNCTION ledger_post_transfer(
    p_transfer_id uuid,
    p_transaction_id uuid,
    p_event_id uuid,
    p_kind text,
    p_expected_version bigint,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_source_amount_minor bigint,
    p_destination_amount_minor bigint,
    p_fx_quote_id text,
    p_fx_rate numeric,
    p_fx_spread_bps integer,
    p_fx_spread_minor bigint
) RETURNS SETOF transfers LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := now();
    v_t transfers;
    v_ids uuid[] := p_account_ids;
    v_currencies text[] := p_currencies;
    v_amounts bigint[] := p_amounts;
    v_release_account uuid;
    v_release_minor bigint := 0;
BEGIN
    UPDATE transfers t
       SET status = 'posted', transaction_id = p_transaction_id,
           source_amount_minor = coalesce(p_source_amount_minor, t.source_amount_minor),
           destination_amount_minor = coalesce(p_destination_amount_minor, t.destination_amount_minor),
           fx_quote_id = coalesce(p_fx_quote_id, t.fx_quote_id), fx_rate = coalesce(p_fx_rate, t.fx_rate),
           fx_spread_bps = coalesce(p_fx_spread_bps, t.fx_spread_bps),
           fx_spread_minor = coalesce(p_fx_spread_minor, t.fx_spread_minor),
           version = t.version + 1, updated_at = v_now
     WHERE t.id = p_transfer_id AND t.status = 'processing'
       AND (p_expected_version IS NULL OR t.version = p_expected_version)
       AND (p_account_ids IS NOT NULL OR t.source_currency = t.destination_currency)
    RETURNING * INTO v_t;
    IF NOT FOUND THEN
        SELECT * INTO v_t FROM transfers t WHERE t.id = p_transfer_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'transfer % not found', p_transfer_id
                USING ERRCODE = 'LF013', DETAIL = coalesce(p_transfer_id::text, '');
        ELSIF v_t.status IN ('posted', 'reversed') THEN
            RETURN NEXT v_t;  -- posted before: the first result, nothing written
            RETURN;
        ELSIF v_t.status = 'processing' AND p_account_ids IS NULL THEN
            RAISE EXCEPTION 'transfer % is %->%: its posting needs an FX quote', p_transfer_id,
                v_t.source_currency, v_t.destination_currency USING ERRCODE = 'LF012', DETAIL = 'quote_required';
        END IF;
        RAISE EXCEPTION 'transfer % is % at version %', p_transfer_id, v_t.status, v_t.version
            USING ERRCODE = 'LF009', DETAIL = coalesce(v_t.status, '');
    END IF;
    IF v_ids IS NULL THEN
        v_ids := ARRAY[v_t.source_account_id, v_t.destination_account_id];
        v_currencies := ARRAY[v_t.source_currency, v_t.destination_currency];
        v_amounts := ARRAY[-v_t.amount_minor, v_t.amount_minor];
    END IF;
    INSERT INTO ledger_transactions (id, idempotency_key, kind, transfer_id, description, posted_at)
    VALUES (p_transaction_id, p_transfer_id, p_kind, p_transfer_id, v_t.description, v_now);
    IF v_t.hold_id IS NOT NULL THEN
        UPDATE holds h SET state = 'posted', transaction_id = p_transaction_id, resolved_at = v_now
         WHERE h.id = v_t.hold_id AND h.state = 'pending' AND (h.expires_at IS NULL OR h.expires_at > v_now)
        RETURNING h.account_id, h.amount_minor INTO v_release_account, v_release_minor;
        IF NOT FOUND THEN
            PERFORM ledger_hold_refusal(v_t.hold_id);
        END IF;
    END IF;
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, 'transfer.posted', '/ledgerflow/ledger', v_t.id::text,
            ledger_transfer_envelope(p_event_id, 'transfer.posted', v_t, v_now,
                jsonb_build_object('legs', ledger_legs_json(v_ids, v_currencies, v_amounts),
                                   'posted_at', ledger_rfc3339(v_now))))
    ON CONFLICT (id) DO NOTHING;
    -- Last, so that the projection rows (one may be a hot account) stay locked for as short a
    -- time as possible: from here to the commit.
    PERFORM ledger_apply_legs(p_transaction_id, v_ids, v_currencies, v_amounts, v_release_account, v_release_minor);
    RETURN NEXT v_t;
END $fn$;

-- End a transfer that will not post (failed, cancelled, expired, rejected): status, hold
-- released, event, one transaction; compare-and-set on the status being one of
-- p_from_statuses (the caller holds the status graph). Otherwise nothing changes and the
-- current row is returned: the caller tells an idempotent replay from an illegal change.
CREATE FUNCTION ledger_void_transfer(p_transfer_id uuid, p_status text, p_from_statuses text[], p_reason text,
                                     p_event_id uuid)
RETURNS SETOF transfers LANGUAGE plpgsql AS $fn$
DECLARE
    v_t transfers;
    v_type text := 'transfer.' || p_status;
BEGIN
    IF p_status NOT IN ('failed', 'cancelled', 'expired', 'rejected') THEN
        RAISE EXCEPTION 'a transfer is voided as failed, cancelled, expired or rejected, not %', p_status
            USING ERRCODE = 'LF011', DETAIL = 'status';
    END IF;
    UPDATE transfers t
       SET status = p_status, failure_reason = p_reason, version = t.version + 1, updated_at = now()
     WHERE t.id = p_transfer_id AND t.status = ANY (p_from_statuses)
       AND t.status IN ('pending_otp', 'in_review', 'processing')
    RETURNING * INTO v_t;
    IF FOUND THEN
        IF v_t.hold_id IS NOT NULL THEN
            PERFORM ledger_release_pending_hold(
                v_t.hold_id, CASE p_status WHEN 'expired' THEN 'expired' ELSE 'voided' END, now());
        END IF;
        INSERT INTO outbox (id, topic, key, type, source, subject, payload)
        VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, v_type, '/ledgerflow/ledger', v_t.id::text,
                ledger_transfer_envelope(p_event_id, v_type, v_t, now(), NULL))
        ON CONFLICT (id) DO NOTHING;
        RETURN NEXT v_t;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM transfers t WHERE t.id = p_transfer_id;
END $fn$;

-- Reverse a posted transfer with a new compensating transaction (nothing is edited), keyed
-- on the reversal id; compare-and-set posted -> reversed on p_expected_version.
CREATE FUNCTION ledger_reverse_transfer(
    p_reversal_id uuid,
    p_transfer_id uuid,
    p_expected_version bigint,
    p_transaction_id uuid,
    p_reason text,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_event_id uuid
) RETURNS SETOF transfers LANGUAGE plpgsql AS $fn$
DECLARE
    v_now timestamptz := now();
    v_t transfers;
    v_original uuid;
BEGIN
    UPDATE transfers t
       SET status = 'reversed', reversal_transaction_id = p_transaction_id, version = t.version + 1,
           updated_at = v_now
     WHERE t.id = p_transfer_id AND t.status = 'posted' AND t.version = p_expected_version
    RETURNING * INTO v_t;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transfer % is not posted at version %', p_transfer_id, p_expected_version
            USING ERRCODE = 'LF009', DETAIL = 'conflict';
    END IF;
    INSERT INTO ledger_transactions (id, idempotency_key, kind, transfer_id, description, posted_at)
    VALUES (p_transaction_id, p_reversal_id, 'reversal', p_transfer_id, p_reason, v_now);
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, 'transfer.reversed', '/ledgerflow/ledger', v_t.id::text,
            ledger_transfer_envelope(p_event_id, 'transfer.reversed', v_t, v_now,
                jsonb_build_object('reversal_id', p_reversal_id,
                                   'reversal_transaction_id', p_transaction_id,
                                   'legs', ledger_legs_json(p_account_ids, p_currencies, p_amounts),
                                   'reason', p_reason)))
    ON CONFLICT (id) DO NOTHING;
    PERFORM ledger_apply_legs(p_transaction_id, p_account_ids, p_currencies, p_amounts, NULL, 0);
    RETURN NEXT v_t;
END $fn$;
"""

TUNING = r"""
-- Every statement of the posting path is a key lookup. With few accounts (a young ledger,
-- tests, the benchmark) the planner prefers a sequential scan of account_balances, whose
-- pages fill with the dead row versions that every posting leaves behind; the index stays
-- cheap whatever the bloat. The setting holds inside these functions (and what they call).
ALTER FUNCTION ledger_post_transfer SET enable_seqscan = off;
ALTER FUNCTION ledger_post SET enable_seqscan = off;
ALTER FUNCTION ledger_create_transfer SET enable_seqscan = off;
ALTER FUNCTION ledger_void_transfer SET enable_seqscan = off;
ALTER FUNCTION ledger_reverse_transfer SET enable_seqscan = off;
ALTER FUNCTION ledger_place_hold SET enable_seqscan = off;
ALTER FUNCTION ledger_release_hold SET enable_seqscan = off;
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


def upgrade() -> None:
    version_num = int(op.get_bind().exec_driver_sql("SHOW server_version_num").scalar_one())
    _run(UUIDV7_NATIVE if version_num >= 180000 else UUIDV7_FALLBACK)
    _run(TABLES)
    _run(TRIGGERS)
    _run(FUNCTIONS)
    _run(TUNING)


def downgrade() -> None:
    _run(DROP)
