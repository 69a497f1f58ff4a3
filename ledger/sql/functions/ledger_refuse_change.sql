-- Refuses the operation outright: used for append-only tables (UPDATE, DELETE, TRUNCATE).
CREATE OR REPLACE FUNCTION ledger_refuse_change()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION '% on % refused: its rows are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LF010', DETAIL = TG_TABLE_NAME;
END $function$;
