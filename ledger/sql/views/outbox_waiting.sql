-- The rows still to be published (not parked). Only a transaction still running when the
-- done snapshot was taken (its xip list) or started after it (from its xmax on) can have
-- written one: both are read off the txid index, not the table, and a long transaction
-- holding the snapshot's xmin back does not widen the read.
-- `o.*` is expanded when the view is made: a column added to outbox later needs this file
-- re-applied (edit it) to appear here; CREATE OR REPLACE only adds columns at the end.
CREATE OR REPLACE VIEW outbox_waiting AS
SELECT o.* FROM outbox o
 WHERE (o.txid >= (SELECT pg_snapshot_xmax(done_snapshot) FROM outbox_cursor)
        OR o.txid = ANY(ARRAY(SELECT pg_snapshot_xip(done_snapshot) FROM outbox_cursor)))
   AND o.published_at IS NULL AND NOT o.parked
   AND NOT outbox_covered(o.txid, o.seq, (SELECT c FROM outbox_cursor c));
