-- Is the row (txid, seq) covered by the cursor? Parked and stamped rows are the caller's
-- business (see outbox_state).
CREATE OR REPLACE FUNCTION outbox_covered(row_txid xid8, row_seq bigint, c outbox_cursor)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT pg_visible_in_snapshot(row_txid, c.done_snapshot)
        OR (c.target_snapshot IS NOT NULL AND row_seq <= c.after_seq
            AND pg_visible_in_snapshot(row_txid, c.target_snapshot))
$function$;
