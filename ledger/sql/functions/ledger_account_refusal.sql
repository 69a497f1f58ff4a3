-- Raise the error that explains why an account refused a change: LF004 (missing), LF002 /
-- LF003 (frozen / closed), LF005 (other currency) or LF001 (not enough available). Cold path.
CREATE OR REPLACE FUNCTION ledger_account_refusal(p_account_id uuid, p_currency text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
END $function$;
