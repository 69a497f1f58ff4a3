-- RFC 3339 UTC text of a timestamp, whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION ledger_rfc3339(p_at timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$function$;
