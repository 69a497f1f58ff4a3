-- Reserve p_amount_minor on an account (available drops, ledger does not). The conditional
-- UPDATE takes the row lock and checks status, currency and funds on the latest row
-- version, so concurrent holds on one account queue and none overdraws.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_place_hold(
    p_hold_id uuid,
    p_account_id uuid,
    p_currency text,
    p_amount_minor bigint,
    p_expires_at timestamp with time zone,
    p_transfer_id uuid
)
 RETURNS SETOF holds
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
END $function$;
