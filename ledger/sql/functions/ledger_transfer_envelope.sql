-- The CloudEvents envelope of a transfer event, its data built from the transfer row: one
-- definition for every transfer event, whichever function writes it. Rates are decimal
-- strings, never JSON numbers.
CREATE OR REPLACE FUNCTION ledger_transfer_envelope(
    p_event_id uuid,
    p_type text,
    t transfers,
    p_at timestamp with time zone,
    p_extra jsonb
)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
    SELECT jsonb_build_object(
        'specversion', '1.0',
        'id', p_event_id,
        'source', '/ledgerflow/ledger',
        'type', p_type,
        'subject', t.id,
        'time', ledger_rfc3339(p_at),
        'datacontenttype', 'application/json',
        'data', jsonb_build_object(
            'transfer_id', t.id,
            'status', t.status,
            'customer_id', t.customer_id,
            'source_account_id', t.source_account_id,
            'destination_account_id', t.destination_account_id,
            'amount_minor', t.amount_minor,
            'currency', t.currency,
            'source_amount_minor', t.source_amount_minor,
            'source_currency', t.source_currency,
            'destination_amount_minor', t.destination_amount_minor,
            'destination_currency', t.destination_currency,
            'fx', CASE WHEN t.source_currency = t.destination_currency THEN NULL ELSE jsonb_build_object(
                      'quote_id', t.fx_quote_id,
                      'rate', t.fx_rate::text,
                      'spread_bps', t.fx_spread_bps,
                      'spread_minor', t.fx_spread_minor,
                      'source_currency', t.source_currency,
                      'destination_currency', t.destination_currency) END,
            'failure_reason', t.failure_reason,
            'description', t.description,
            'hold_id', t.hold_id,
            'transaction_id', t.transaction_id,
            'workflow_id', t.workflow_id,
            'version', t.version
        ) || coalesce(p_extra, '{}'::jsonb))
$function$;
