-- A number, once given, stays with its account (a person may have written it down).
CREATE OR REPLACE FUNCTION ledger_account_number_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.account_number IS DISTINCT FROM OLD.account_number THEN
        RAISE EXCEPTION 'account %: the account number is immutable', OLD.id
            USING ERRCODE = 'LF010', DETAIL = 'accounts';
    END IF;
    RETURN NEW;
END $function$;
