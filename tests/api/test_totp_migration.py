"""Migration 0012_totp goes up and down cleanly, and refuses a TOTP secret in clear."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from ledger.migrate import downgrade, upgrade

TOTP_TABLES = {"totp_credentials", "totp_recovery_codes"}


def test_up_down_up_and_no_clear_secret(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert set(inspect(engine).get_table_names()) >= TOTP_TABLES
        with (
            psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn,
            pytest.raises(psycopg.errors.CheckViolation),
        ):
            conn.execute(
                "INSERT INTO totp_credentials (realm, principal_id, secret_sealed) VALUES ('staff', %s, %s)",
                (uuid.uuid4(), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            )
        downgrade(db_url, "0009_outbox_cursor")
        assert not TOTP_TABLES & set(inspect(engine).get_table_names())
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) >= TOTP_TABLES
    finally:
        engine.dispose()
