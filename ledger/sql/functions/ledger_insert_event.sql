-- One outbox row from {id, topic, key, type, source, subject, payload} (NULL: nothing). A
-- retried call inserts nothing new: ids derive from business ids (ON CONFLICT DO NOTHING).
-- With p_at, the envelope's `time` becomes the database's transaction time.
CREATE OR REPLACE FUNCTION ledger_insert_event(p_event jsonb, p_at timestamp with time zone)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_event IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO outbox (id, topic, key, type, source, subject, payload)
    VALUES ((p_event ->> 'id')::uuid, p_event ->> 'topic', p_event ->> 'key', p_event ->> 'type',
            p_event ->> 'source', p_event ->> 'subject',
            CASE WHEN p_at IS NULL THEN p_event -> 'payload'
                 ELSE (p_event -> 'payload') || jsonb_build_object('time', ledger_rfc3339(p_at)) END)
    ON CONFLICT (id) DO NOTHING;
END $function$;
