-- What an account is (kind, currency, owner, overdraft flag) never changes; status does.
CREATE OR REPLACE FUNCTION ledger_accounts_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.currency <> OLD.currency
       OR NEW.allow_overdraft <> OLD.allow_overdraft OR NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        RAISE EXCEPTION 'account %: id, kind, currency, owner and overdraft flag are immutable', OLD.id
            USING ERRCODE = 'LF010', DETAIL = 'accounts';
    END IF;
    RETURN NEW;
END $function$;
