-- Invariant 8: a hold leaves 'pending' once, and what it holds never changes.
CREATE OR REPLACE FUNCTION ledger_holds_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
END $function$;
