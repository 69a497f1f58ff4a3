-- Every account gets its projection row, and the row's status follows the account's. The
-- status update takes the projection row lock, so it queues behind in-flight postings and
-- every posting after it sees the new status.
CREATE OR REPLACE FUNCTION ledger_accounts_sync_balance()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_balances (account_id, currency, allow_overdraft, status)
        VALUES (NEW.id, NEW.currency, NEW.allow_overdraft, NEW.status);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        UPDATE account_balances SET status = NEW.status, updated_at = now() WHERE account_id = NEW.id;
    END IF;
    RETURN NULL;
END $function$;
