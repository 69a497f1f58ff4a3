"""The invariants checked after the faults stop and the system drains."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import Engine, Row

NON_TERMINAL = ("pending_otp", "processing", "in_review")


def wait_drained(engine: Engine, timeout_s: float = 300) -> bool:
    """Until no transfer is in flight and every outbox row is published (or parked)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(
                text("SELECT count(*) FROM transfers WHERE status = ANY(:s)"), {"s": list(NON_TERMINAL)}
            ).scalar_one()
            unpublished = conn.execute(text("SELECT count(*) FROM outbox_waiting")).scalar_one()
        if busy == 0 and unpublished == 0:
            return True
        time.sleep(0.5)
    return False


def kafka_posted_ids(bootstrap: str) -> tuple[set[str], int]:
    """Every transfer.posted event id on the transfers topic, and the number of messages seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-check-{time.time_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    topic = "ledgerflow.transfers"
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    consumer.assign(partitions)
    ids: set[str] = set()
    seen = 0
    positions = {p: 0 for p in ends}
    deadline = time.monotonic() + 120
    while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        partition, offset, value = msg.partition(), msg.offset(), msg.value()
        if partition is None or offset is None or value is None:
            continue  # only a message without a partition or value (an error) lacks them
        positions[partition] = offset + 1
        event = json.loads(value)
        if event.get("type") == "transfer.posted":
            seen += 1
            ids.add(event["id"])
    consumer.close()
    return ids, seen


def check_invariants(engine: Engine, bootstrap: str, negative_reads: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with engine.connect() as conn:

        def q(sql: str) -> Sequence[Row[Any]]:
            return conn.execute(text(sql)).all()

        stuck = q("SELECT id, status FROM transfers WHERE status IN ('pending_otp', 'processing', 'in_review')")
        results["every_transfer_terminal"] = not stuck
        unbalanced = q(
            "SELECT currency, sum(CASE direction WHEN 'debit' THEN amount_minor ELSE -amount_minor END) AS net "
            "FROM entries GROUP BY currency HAVING sum(CASE direction WHEN 'debit' THEN amount_minor "
            "ELSE -amount_minor END) <> 0"
        )
        results["trial_balance_zero_per_currency"] = not unbalanced
        negative = q(
            "SELECT b.account_id FROM account_balances b JOIN accounts a ON a.id = b.account_id "
            "WHERE a.kind = 'customer' AND NOT a.allow_overdraft AND b.ledger_minor - b.held_minor < 0"
        )
        results["no_customer_below_zero"] = not negative and not negative_reads
        totals = q("SELECT currency, sum(ledger_minor) FROM account_balances GROUP BY currency")
        results["customer_plus_house_total_unchanged"] = all(total == 0 for _, total in totals)
        drift = q(
            "SELECT b.account_id FROM account_balances b LEFT JOIN ("
            " SELECT account_id, sum(CASE direction WHEN 'credit' THEN amount_minor ELSE -amount_minor END) AS s"
            " FROM entries GROUP BY account_id) e ON e.account_id = b.account_id "
            "WHERE b.ledger_minor <> coalesce(e.s, 0)"
        )
        results["projection_equals_entries"] = not drift
        double_posted = q(
            "SELECT transfer_id FROM ledger_transactions WHERE transfer_id IS NOT NULL AND kind <> 'reversal' "
            "GROUP BY transfer_id HAVING count(*) > 1"
        )
        posted = {str(r[0]) for r in q("SELECT id FROM transfers WHERE status IN ('posted', 'reversed')")}
        posted_rows = q("SELECT key, id FROM outbox WHERE type = 'transfer.posted'")
        per_transfer: dict[str, int] = {}
        for key, _ in posted_rows:
            per_transfer[str(key)] = per_transfer.get(str(key), 0) + 1
        results["posted_exactly_once"] = (
            not double_posted and all(per_transfer.get(t) == 1 for t in posted) and (set(per_transfer) == posted)
        )
        # DESIGN invariant 11: per customer, source currency and UTC day, what counts against
        # the limits (every transfer not failed, cancelled, expired or rejected) stays within
        # the customer's own limit for that currency, else the default one.
        over_limit = q(
            "WITH used AS ("
            " SELECT customer_id, source_currency AS currency, (created_at AT TIME ZONE 'UTC')::date AS day,"
            "        sum(source_amount_minor) AS total, max(source_amount_minor) AS largest"
            " FROM transfers WHERE status NOT IN ('failed', 'cancelled', 'expired', 'rejected') GROUP BY 1, 2, 3) "
            "SELECT u.customer_id, u.currency, u.day FROM used u "
            "CROSS JOIN LATERAL (SELECT elem FROM limit_sets, jsonb_array_elements(limits) AS elem"
            "  WHERE scope IN (u.customer_id::text, 'default') AND elem ->> 'currency' = u.currency"
            "  ORDER BY scope = 'default' LIMIT 1) AS l "
            "WHERE u.total > coalesce((l.elem ->> 'daily_max_minor')::bigint, u.total)"
            "   OR u.largest > coalesce((l.elem ->> 'per_transfer_max_minor')::bigint, u.largest)"
        )
        results["no_limit_exceeded"] = not over_limit
        # Risk review: a posted transfer had an allow verdict that the workflow acted on (no
        # decision of its own), or went through a review (its decision is `review`).
        unreviewed = q(
            "SELECT t.id FROM transfers t WHERE t.status IN ('posted', 'reversed') AND NOT ("
            " EXISTS (SELECT 1 FROM risk_decisions d WHERE d.transfer_id = t.id AND d.verdict = 'review')"
            " OR (EXISTS (SELECT 1 FROM risk_assessments a WHERE a.transfer_id = t.id AND a.verdict = 'allow')"
            "     AND NOT EXISTS (SELECT 1 FROM risk_decisions d WHERE d.transfer_id = t.id)))"
        )
        results["no_post_without_verdict_or_review"] = not unreviewed
        pending_holds = q("SELECT id FROM holds WHERE state = 'pending'")
        results["no_hold_left_pending"] = not pending_holds
        outbox_posted_ids = {str(r[1]) for r in posted_rows}
    kafka_ids, kafka_messages = kafka_posted_ids(bootstrap)
    results["every_posted_event_on_kafka"] = outbox_posted_ids <= kafka_ids
    details = {
        "stuck_transfers": [str(r[0]) for r in stuck][:20],
        "unbalanced_currencies": [list(map(str, r)) for r in unbalanced],
        "negative_accounts": [str(r[0]) for r in negative][:20] + negative_reads[:20],
        "projection_drift": [str(r[0]) for r in drift][:20],
        "double_posted": [str(r[0]) for r in double_posted][:20],
        "pending_holds": [str(r[0]) for r in pending_holds][:20],
        "over_limit": [list(map(str, r)) for r in over_limit][:20],
        "posted_without_verdict_or_review": [str(r[0]) for r in unreviewed][:20],
        "missing_on_kafka": sorted(outbox_posted_ids - kafka_ids)[:20],
        "kafka_posted_messages": kafka_messages,
        "kafka_posted_unique_ids": len(kafka_ids),
    }
    return {"invariants": results, "details": details}
