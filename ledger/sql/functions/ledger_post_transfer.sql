-- Post a transfer: its hold becomes the legs, in ONE transaction with the projection, the
-- status (compare-and-set: 'processing' -> 'posted', and on p_expected_version when given),
-- the ledger transaction keyed on the transfer id, and the transfer.posted event.
-- With p_account_ids NULL (the hot path: one round trip, nothing read first) the legs of a
-- same-currency transfer come from its row: debit the source, credit the destination, the
-- amount the caller validated at creation; a cross-currency transfer then raises LF012 (the
-- caller computes its FX legs and passes them, and they go through ledger_apply_legs).
-- Returns the transfer row after the call: if it was posted before, unchanged (its
-- transaction_id is not p_transaction_id: a replay).
-- Raises LF013 (no such transfer), LF009 (not processing, or version moved; detail: status).
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_post_transfer(
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
)
 RETURNS SETOF transfers
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
DECLARE
    v_now timestamptz := now();
    v_t transfers;
    v_release_account uuid;
    v_release_minor bigint := 0;
    -- the same-currency path: leg 1 debits the source, leg 2 credits the destination
    v_first integer;
    v_leg integer;
    v_account uuid;
    v_delta bigint;
    v_release bigint;
    v_ledger bigint;
    v_at timestamptz;
    v_source_after bigint;
    v_source_at timestamptz;
    v_destination_after bigint;
    v_destination_at timestamptz;
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

    IF p_account_ids IS NOT NULL THEN
        -- Legs given by the caller (cross-currency): the generic writer.
        INSERT INTO outbox (id, topic, key, type, source, subject, payload)
        VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, 'transfer.posted', '/ledgerflow/ledger',
                v_t.id::text,
                ledger_transfer_envelope(p_event_id, 'transfer.posted', v_t, v_now,
                    jsonb_build_object('legs', ledger_legs_json(p_account_ids, p_currencies, p_amounts),
                                       'posted_at', ledger_rfc3339(v_now))))
        ON CONFLICT (id) DO NOTHING;
        PERFORM ledger_apply_legs(p_transaction_id, p_account_ids, p_currencies, p_amounts,
                                  v_release_account, v_release_minor);
        RETURN NEXT v_t;
        RETURN;
    END IF;

    -- Same currency: two legs from the row, written without the generic machinery.
    -- The hold settled here must be on one of the two accounts (as ledger_apply_legs demands).
    IF v_release_account IS NOT NULL
       AND v_release_account NOT IN (v_t.source_account_id, v_t.destination_account_id) THEN
        RAISE EXCEPTION 'transaction %: the held account is not among its legs', p_transaction_id
            USING ERRCODE = 'LF006', DETAIL = '';
    END IF;
    -- The event's legs: the JSON ledger_legs_json builds for [-amount, +amount].
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, 'transfer.posted', '/ledgerflow/ledger', v_t.id::text,
            ledger_transfer_envelope(p_event_id, 'transfer.posted', v_t, v_now,
                jsonb_build_object(
                    'legs', jsonb_build_array(
                        jsonb_build_object('account_id', v_t.source_account_id, 'direction', 'debit',
                                           'amount_minor', v_t.amount_minor, 'currency', v_t.source_currency),
                        jsonb_build_object('account_id', v_t.destination_account_id, 'direction', 'credit',
                                           'amount_minor', v_t.amount_minor, 'currency', v_t.destination_currency)),
                    'posted_at', ledger_rfc3339(v_now))))
    ON CONFLICT (id) DO NOTHING;
    -- Last, so that the projection rows (one may be a hot account) stay locked for as short a
    -- time as possible: from here to the commit. Locked in account-id order, like every
    -- writer, so posters sharing accounts queue instead of deadlocking. Each row takes the
    -- same conditional update as in ledger_apply_legs: active, and a customer's available
    -- balance may not end below zero; its last_posted_at moves strictly forward.
    v_first := CASE WHEN v_t.source_account_id < v_t.destination_account_id THEN 1 ELSE 2 END;
    FOR v_k IN 0 .. 1 LOOP
        v_leg := CASE WHEN v_k = 0 THEN v_first ELSE 3 - v_first END;
        IF v_leg = 1 THEN
            v_account := v_t.source_account_id;
            v_delta := -v_t.amount_minor;
        ELSE
            v_account := v_t.destination_account_id;
            v_delta := v_t.amount_minor;
        END IF;
        v_release := CASE WHEN v_account = v_release_account THEN v_release_minor ELSE 0 END;
        UPDATE account_balances b
           SET ledger_minor = b.ledger_minor + v_delta,
               held_minor = b.held_minor - v_release,
               version = b.version + 1,
               last_posted_at = greatest(clock_timestamp(), b.last_posted_at + interval '1 microsecond'),
               updated_at = now()
         WHERE b.account_id = v_account
           AND b.status = 'active'
           AND (b.allow_overdraft OR v_delta >= 0 OR b.ledger_minor + v_delta - (b.held_minor - v_release) >= 0)
        RETURNING b.ledger_minor, b.last_posted_at INTO v_ledger, v_at;
        IF NOT FOUND THEN
            PERFORM ledger_account_refusal(v_account, NULL);
        END IF;
        IF v_leg = 1 THEN
            v_source_after := v_ledger;
            v_source_at := v_at;
        ELSE
            v_destination_after := v_ledger;
            v_destination_at := v_at;
        END IF;
    END LOOP;
    -- One statement for both legs: entries_balanced checks what one INSERT wrote.
    INSERT INTO entries (transaction_id, leg_no, account_id, currency, direction, amount_minor,
                         balance_after_minor, posted_at)
    VALUES (p_transaction_id, 1, v_t.source_account_id, v_t.source_currency, 'debit', v_t.amount_minor,
            v_source_after, v_source_at),
           (p_transaction_id, 2, v_t.destination_account_id, v_t.destination_currency, 'credit', v_t.amount_minor,
            v_destination_after, v_destination_at);
    RETURN NEXT v_t;
END $function$;
