"""Migrations 0005_recon (on top of 0004_api) and 0008_recon_alerts go up and down cleanly."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from psycopg.types.json import Jsonb
from sqlalchemy import create_engine, inspect

from ledger.migrate import downgrade, upgrade

RECON_TABLES = {
    "reconciliation_runs",
    "reconciliation_checks",
    "reversals",
    "statement_imports",
    "statement_lines",
    "statement_matches",
}


def test_up_down_up(db_url: str) -> None:
    upgrade(db_url, "0005_recon")
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert set(inspect(engine).get_table_names()) >= RECON_TABLES
        downgrade(db_url, "0004_api")
        names = set(inspect(engine).get_table_names())
        assert not RECON_TABLES & names and "audit_log" in names
        upgrade(db_url, "0005_recon")
        assert set(inspect(engine).get_table_names()) >= RECON_TABLES
    finally:
        engine.dispose()


# A topic outside the enum fails its cast; a known topic of the wrong type fails the CHECK.
REFUSED = (psycopg.errors.CheckViolation, psycopg.errors.InvalidTextRepresentation)


def _outbox_row(conn: psycopg.Connection[Any], event_type: str, topic: str) -> str:
    event_id = str(uuid.uuid4())
    payload = {"specversion": "1.0", "id": event_id, "type": event_type, "source": "/test", "data": {}}
    conn.execute(
        "INSERT INTO outbox (id, topic, key, type, source, payload) VALUES (%s, %s, %s, %s, '/test', %s)",
        (event_id, topic, event_id, event_type, Jsonb(payload)),
    )
    return event_id


def _topics(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT unnest(enum_range(NULL::ledger_topic))::text").fetchall()]


def test_0008_adds_the_ops_topic_for_reconciliation_events_and_goes_down_cleanly(db_url: str) -> None:
    # Up to 0007 first, then 0008 alone: the path of an existing database (its own transaction).
    upgrade(db_url, "0007_relay_outbox")
    upgrade(db_url, "0008_recon_alerts")
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        assert _topics(conn)[-1] == "ledgerflow.ops"
        alert = _outbox_row(conn, "reconciliation.failed", "ledgerflow.ops")
        # The topic follows the type, for the new prefix as for the old ones.
        for event_type, topic in [
            ("reconciliation.failed", "ledgerflow.reconciliations"),
            ("reconciliation.failed", "ledgerflow.transfers"),
            ("transfer.posted", "ledgerflow.ops"),
            ("ops.anything", "ledgerflow.ops"),
        ]:
            with pytest.raises(REFUSED):
                _outbox_row(conn, event_type, topic)
        _outbox_row(conn, "transfer.posted", "ledgerflow.transfers")

        # An alert the relay has not published yet blocks the downgrade (it would be lost).
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="not published yet"):
            downgrade(db_url, "0007_relay_outbox")
        conn.execute("UPDATE outbox SET published_at = now() WHERE id = %s", (alert,))
        downgrade(db_url, "0007_relay_outbox")
        assert _topics(conn) == ["ledgerflow.transfers", "ledgerflow.accounts", "ledgerflow.notifications"]
        assert conn.execute("SELECT count(*) FROM outbox WHERE type LIKE 'reconciliation.%'").fetchone() == (0,)
        with pytest.raises(REFUSED):
            _outbox_row(conn, "reconciliation.failed", "ledgerflow.ops")

        upgrade(db_url)
        assert "ledgerflow.ops" in _topics(conn)
        _outbox_row(conn, "reconciliation.failed", "ledgerflow.ops")
