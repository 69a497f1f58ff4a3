"""Migration 0005_recon goes up and down cleanly on top of 0004_api."""

from __future__ import annotations

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
