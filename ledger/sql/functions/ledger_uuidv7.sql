-- A time-ordered UUID (RFC 9562 version 7): the default id of entries. PostgreSQL 18 has
-- uuidv7(); before it, one is built from the clock and gen_random_uuid(). The server's
-- version picks the body, so this file is a DO block around the two definitions.
DO $do$
BEGIN
    IF current_setting('server_version_num')::integer >= 180000 THEN
        EXECUTE $def$
CREATE OR REPLACE FUNCTION ledger_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$ SELECT uuidv7() $$;
$def$;
    ELSE
        EXECUTE $def$
CREATE OR REPLACE FUNCTION ledger_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 'hex')::uuid
$$;
$def$;
    END IF;
END
$do$;
