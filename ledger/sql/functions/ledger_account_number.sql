-- The number for serial n: ISO 7064 mod 97-10 as IBAN computes it (BBAN, then the country
-- letters as digits, L = 21, F = 15, then 00; check = 98 - that mod 97). Mirrors
-- ledger/account_numbers.py, which checks numbers typed by people.
CREATE OR REPLACE FUNCTION ledger_account_number(serial bigint)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT 'LF' || lpad((98 - (('1000' || lpad(serial::text, 12, '0') || '211500')::numeric % 97))::text, 2, '0')
           || '1000' || lpad(serial::text, 12, '0')
$function$;
