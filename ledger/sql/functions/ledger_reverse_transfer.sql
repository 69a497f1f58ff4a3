-- Reverse a posted transfer with a new compensating transaction (nothing is edited), keyed
-- on the reversal id; compare-and-set posted -> reversed on p_expected_version.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_reverse_transfer(
    p_reversal_id uuid,
    p_transfer_id uuid,
    p_expected_version bigint,
    p_transaction_id uuid,
    p_reason text,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_event_id uuid
)
 RETURNS SETOF transfers
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
END $function$;
