-- Void or expire one hold. Doing it twice is a no-op; any other state raises LF007.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_release_hold(p_hold_id uuid, p_state text)
 RETURNS SETOF holds
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
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
END $function$;
