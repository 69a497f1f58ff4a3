-- The sweeper: expire up to p_limit pending holds past their deadline. Due holds are taken
-- with SKIP LOCKED (a hold being posted right now is left alone) and their projection rows
-- locked in account order before any change, like every other writer.
CREATE OR REPLACE FUNCTION ledger_expire_due_holds(p_now timestamp with time zone, p_limit integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_ids uuid[];
BEGIN
    SELECT coalesce(array_agg(d.id), '{}') INTO v_ids
      FROM (SELECT h.id FROM holds h
             WHERE h.state = 'pending' AND h.expires_at <= p_now
             ORDER BY h.expires_at LIMIT p_limit
               FOR UPDATE SKIP LOCKED) d;
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM account_balances b
     WHERE b.account_id IN (SELECT h.account_id FROM holds h WHERE h.id = ANY (v_ids))
     ORDER BY b.account_id FOR UPDATE;
    UPDATE account_balances b
       SET held_minor = b.held_minor - s.total, version = b.version + 1, updated_at = now()
      FROM (SELECT h.account_id, sum(h.amount_minor)::bigint AS total FROM holds h
             WHERE h.id = ANY (v_ids) GROUP BY h.account_id) s
     WHERE b.account_id = s.account_id;
    UPDATE holds h SET state = 'expired', resolved_at = p_now WHERE h.id = ANY (v_ids);
    RETURN cardinality(v_ids);
END $function$;
