-- The legs of a transaction as the JSON array events carry.
CREATE OR REPLACE FUNCTION ledger_legs_json(
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[]
)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT jsonb_agg(jsonb_build_object(
               'account_id', l.account_id,
               'direction', CASE WHEN l.amount > 0 THEN 'credit' ELSE 'debit' END,
               'amount_minor', abs(l.amount),
               'currency', l.currency) ORDER BY l.ord)
      FROM unnest(p_account_ids, p_currencies, p_amounts) WITH ORDINALITY AS l(account_id, currency, amount, ord)
$function$;
