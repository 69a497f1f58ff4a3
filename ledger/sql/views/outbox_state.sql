-- Every outbox row with its effective publication: `published` is exact (the cursor),
-- `published_at` the page's commit time (or the stamp of a row published before 0009).
CREATE OR REPLACE VIEW outbox_state AS
SELECT o.id, o.seq, o.txid, o.topic, o.key, o.type, o.source, o.subject, o.payload, o.created_at,
       o.attempts, o.last_error, o.parked,
       (NOT o.parked AND (o.published_at IS NOT NULL OR outbox_covered(o.txid, o.seq, c))) AS published,
       CASE WHEN o.published_at IS NOT NULL THEN o.published_at
            WHEN NOT o.parked AND outbox_covered(o.txid, o.seq, c) THEN outbox_published_at(o.txid, o.seq)
       END AS published_at
  FROM outbox o CROSS JOIN outbox_cursor c;
