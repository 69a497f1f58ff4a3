"""Migration 0004_api goes up and down cleanly on top of the ledger's chain."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from ledger.migrate import downgrade, upgrade

API_TABLES = {"customers", "staff", "auth_tokens", "login_failures", "idempotency_keys", "audit_log"}


def test_up_down_up(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert set(inspect(engine).get_table_names()) >= API_TABLES
        downgrade(db_url, "0003_relay_consumers")
        inspect_after = inspect(engine)
        assert not API_TABLES & set(inspect_after.get_table_names())
        assert "notifications" in inspect_after.get_table_names()
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) >= API_TABLES
    finally:
        engine.dispose()
