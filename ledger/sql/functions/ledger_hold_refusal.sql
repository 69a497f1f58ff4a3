-- Raise the error that explains why a hold could not be posted: LF008 (no such hold) or
-- LF007 (not pending, or past its deadline: detail 'expired'). Cold path only.
CREATE OR REPLACE FUNCTION ledger_hold_refusal(p_hold_id uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
END $function$;
