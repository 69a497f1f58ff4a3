-- Generic posting (deposits, hold postings, adjustments): idempotent by p_idempotency_key.
-- A replay writes nothing and returns the first transaction (replayed = true) with the
-- request hash it was made with, so the caller can tell a retry from a reused key.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_post(
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
)
 RETURNS TABLE(transaction_id uuid, posted_at timestamp with time zone, replayed boolean, request_hash text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
END $function$;
