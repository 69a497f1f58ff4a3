-- The audit log is append-only: any UPDATE, DELETE or TRUNCATE is refused.
CREATE OR REPLACE FUNCTION api_audit_log_append_only()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $function$;
