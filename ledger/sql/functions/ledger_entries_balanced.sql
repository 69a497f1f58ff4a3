-- Invariant 2, checked by the database for every writer: the rows of each INSERT statement
-- on entries net to zero per transaction and currency. A transaction is the sum of such
-- zero-sum contributions, so it always balances; and the check reads only the statement's
-- own rows (the transition table), not the entries table. (A transaction's legs are
-- therefore written by one statement, as ledger_apply_legs does.)
CREATE OR REPLACE FUNCTION ledger_entries_balanced()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v record;
BEGIN
    SELECT n.transaction_id, n.currency INTO v
      FROM new_entries n
     GROUP BY n.transaction_id, n.currency
    HAVING sum(CASE n.direction WHEN 'credit' THEN n.amount_minor ELSE -n.amount_minor END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction % does not balance in %', v.transaction_id, v.currency
            USING ERRCODE = 'LF006', DETAIL = coalesce(v.currency, '');
    END IF;
    RETURN NULL;
END $function$;
