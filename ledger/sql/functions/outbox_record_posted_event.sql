-- Keeps posted_events (what retention must not sweep) in step with the outbox: a row per
-- transfer.posted / transfer.reversed event, written in the posting transaction.
CREATE OR REPLACE FUNCTION outbox_record_posted_event()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO posted_events (event_id, transfer_id, type, created_at)
    VALUES (NEW.id, NEW.key::uuid, NEW.type, NEW.created_at)
    ON CONFLICT (event_id) DO NOTHING;
    RETURN NULL;
END $function$;
