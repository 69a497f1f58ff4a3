-- NULL while the challenge `ref` can be used at `now`; else the word the inbox shows.
CREATE OR REPLACE FUNCTION otp_code_unusable(p_ref text, p_now timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
    SELECT CASE
        WHEN c.transfer_id IS NULL THEN 'expired'
        WHEN c.state = 'used' THEN 'used'
        WHEN t.status = 'cancelled' THEN 'cancelled'
        WHEN c.state <> 'pending' OR c.expires_at <= p_now THEN 'expired'
        -- A transfer's code also ends with its transfer's wait; payees and standing orders have
        -- no transfer row, their challenge's own state says it all.
        WHEN t.id IS NOT NULL AND t.status <> 'pending_otp' THEN 'expired'
    END
      FROM (SELECT CASE WHEN p_ref ~ '^[0-9a-fA-F-]{36}$' THEN p_ref::uuid END AS id) ref
      LEFT JOIN otp_challenges c ON c.transfer_id = ref.id
      LEFT JOIN transfers t ON t.id = c.transfer_id
$function$;
