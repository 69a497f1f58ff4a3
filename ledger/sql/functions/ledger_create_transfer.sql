-- Create a transfer in pending_otp with its hold and its transfer.initiated event, in one
-- transaction. The caller validated the request and checked that the id is new; a
-- concurrent twin fails on the primary key and the caller reads the winner. The source's
-- projection row is locked last (the event is written first), so that a hot source account
-- stays locked only for the hold and the two inserts that reference it.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_create_transfer(
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
    p_hold_expires_at timestamp with time zone,
    p_workflow_id text,
    p_event_id uuid
)
 RETURNS SETOF transfers
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
END $function$;
