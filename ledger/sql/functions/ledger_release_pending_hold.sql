-- Move a pending hold to p_state (voided or expired) and give its amount back; returns
-- whether this call did it. Never raises on a hold that is no longer pending.
CREATE OR REPLACE FUNCTION ledger_release_pending_hold(
    p_hold_id uuid,
    p_state text,
    p_at timestamp with time zone
)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
END $function$;
