-- When the page that published (txid, seq) committed. Costly (an index probe): the planner
-- is told so, and evaluates it after the cheap conditions.
CREATE OR REPLACE FUNCTION outbox_published_at(row_txid xid8, row_seq bigint)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE PARALLEL SAFE COST 1000
AS $function$
    SELECT p.published_at FROM outbox_publications p
     WHERE p.to_seq >= row_seq AND p.from_seq < row_seq
       AND pg_visible_in_snapshot(row_txid, p.target_snapshot)
       AND NOT pg_visible_in_snapshot(row_txid, p.done_snapshot)
     ORDER BY p.to_seq LIMIT 1
$function$;
