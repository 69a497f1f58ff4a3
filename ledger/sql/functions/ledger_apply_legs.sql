-- The heart of every posting: legs given as parallel arrays (signed amounts: credit > 0,
-- debit < 0). For each touched account, in account-id order (every writer locks in this
-- order, so posters sharing accounts queue instead of deadlocking), one conditional UPDATE
-- applies the account's net delta, refusing an inactive account and, with the overdraft
-- guard, a customer account that would end below zero available. Then one INSERT writes the
-- entries with their running balance. p_release_* gives back the amount of the hold being
-- posted in the same update. The balance per currency is checked by the entries_balanced
-- trigger, each leg's currency by the entries foreign key.
CREATE OR REPLACE FUNCTION ledger_apply_legs(
    p_transaction_id uuid,
    p_account_ids uuid[],
    p_currencies text[],
    p_amounts bigint[],
    p_release_account_id uuid DEFAULT NULL::uuid,
    p_release_minor bigint DEFAULT 0
)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_legs integer := coalesce(cardinality(p_account_ids), 0);
    v_row record;
    v_release bigint;
    v_ledger bigint;
    v_last timestamptz;
    -- per touched account (parallel arrays): id, running balance, next entry time
    v_acc uuid[] := '{}';
    v_running bigint[] := '{}';
    v_next_at timestamptz[] := '{}';
    -- per leg
    v_balance_after bigint[] := '{}';
    v_posted_at timestamptz[] := '{}';
    v_j integer;
BEGIN
    IF v_legs < 2 OR coalesce(cardinality(p_currencies), 0) <> v_legs
       OR coalesce(cardinality(p_amounts), 0) <> v_legs
       OR (p_release_account_id IS NOT NULL AND NOT p_release_account_id = ANY (p_account_ids)) THEN
        RAISE EXCEPTION 'transaction %: needs two or more legs, each with a currency and an amount, '
                        'and the held account among them', p_transaction_id
            USING ERRCODE = 'LF006', DETAIL = '';
    END IF;

    FOR v_row IN
        SELECT l.account_id, sum(l.amount)::bigint AS delta, count(*)::integer AS n
          FROM unnest(p_account_ids, p_amounts) AS l(account_id, amount)
         GROUP BY l.account_id
         ORDER BY l.account_id
    LOOP
        v_release := CASE WHEN v_row.account_id = p_release_account_id THEN p_release_minor ELSE 0 END;
        UPDATE account_balances b
           SET ledger_minor = b.ledger_minor + v_row.delta,
               held_minor = b.held_minor - v_release,
               version = b.version + 1,
               -- strictly after the account's previous entry, one microsecond per leg
               last_posted_at = greatest(clock_timestamp(), b.last_posted_at + interval '1 microsecond')
                   + (v_row.n - 1) * interval '1 microsecond',
               updated_at = now()
         WHERE b.account_id = v_row.account_id
           AND b.status = 'active'
           -- the overdraft guard: a customer's available balance may not end below zero
           AND (b.allow_overdraft OR v_row.delta >= 0
                OR b.ledger_minor + v_row.delta - (b.held_minor - v_release) >= 0)
        RETURNING b.ledger_minor - v_row.delta, b.last_posted_at - (v_row.n - 1) * interval '1 microsecond'
             INTO v_ledger, v_last;
        IF NOT FOUND THEN
            PERFORM ledger_account_refusal(v_row.account_id, NULL);
        END IF;
        v_acc := v_acc || v_row.account_id;
        v_running := v_running || v_ledger;
        v_next_at := v_next_at || v_last;
    END LOOP;

    -- running balance and time of each leg, in leg order
    FOR i IN 1 .. v_legs LOOP
        v_j := array_position(v_acc, p_account_ids[i]);
        v_running[v_j] := v_running[v_j] + p_amounts[i];
        v_balance_after := v_balance_after || v_running[v_j];
        v_posted_at := v_posted_at || v_next_at[v_j];
        v_next_at[v_j] := v_next_at[v_j] + interval '1 microsecond';
    END LOOP;

    INSERT INTO entries (transaction_id, leg_no, account_id, currency, direction, amount_minor,
                         balance_after_minor, posted_at)
    SELECT p_transaction_id, l.ord::integer, l.account_id, l.currency,
           CASE WHEN l.amount > 0 THEN 'credit' ELSE 'debit' END, abs(l.amount), l.balance_after, l.posted_at
      FROM unnest(p_account_ids, p_currencies, p_amounts, v_balance_after, v_posted_at) WITH ORDINALITY
           AS l(account_id, currency, amount, balance_after, posted_at, ord);
END $function$;
