-- End a transfer that will not post (failed, cancelled, expired, rejected): status, hold
-- released, event, one transaction; compare-and-set on the status being one of
-- p_from_statuses (the caller holds the status graph). Otherwise nothing changes and the
-- current row is returned: the caller tells an idempotent replay from an illegal change.
-- enable_seqscan off: every statement here is a key lookup; with few accounts the planner
-- would scan account_balances, whose pages fill with the dead row versions every posting leaves.
CREATE OR REPLACE FUNCTION ledger_void_transfer(
    p_transfer_id uuid,
    p_status text,
    p_from_statuses text[],
    p_reason text,
    p_event_id uuid
)
 RETURNS SETOF transfers
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
AS $function$
DECLARE
    v_t transfers;
    v_type text := 'transfer.' || p_status;
BEGIN
    IF p_status NOT IN ('failed', 'cancelled', 'expired', 'rejected') THEN
        RAISE EXCEPTION 'a transfer is voided as failed, cancelled, expired or rejected, not %', p_status
            USING ERRCODE = 'LF011', DETAIL = 'status';
    END IF;
    UPDATE transfers t
       SET status = p_status, failure_reason = p_reason, version = t.version + 1, updated_at = now()
     WHERE t.id = p_transfer_id AND t.status = ANY (p_from_statuses)
       AND t.status IN ('pending_otp', 'in_review', 'processing')
    RETURNING * INTO v_t;
    IF FOUND THEN
        IF v_t.hold_id IS NOT NULL THEN
            PERFORM ledger_release_pending_hold(
                v_t.hold_id, CASE p_status WHEN 'expired' THEN 'expired' ELSE 'voided' END, now());
        END IF;
        INSERT INTO outbox (id, topic, key, type, source, subject, payload)
        VALUES (p_event_id, 'ledgerflow.transfers', v_t.id::text, v_type, '/ledgerflow/ledger', v_t.id::text,
                ledger_transfer_envelope(p_event_id, v_type, v_t, now(), NULL))
        ON CONFLICT (id) DO NOTHING;
        RETURN NEXT v_t;
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM transfers t WHERE t.id = p_transfer_id;
END $function$;
