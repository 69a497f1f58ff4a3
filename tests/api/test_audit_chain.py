"""ledger/audit.py on its own database: append-only in the database, tampering detected."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from ledger import audit


def test_append_only_and_tamper_evident(migrated_db_url: str) -> None:
    engine = create_engine(migrated_db_url)
    actor = audit.Actor("staff", "s-1", "ops@example.test")
    with engine.begin() as conn:
        ids = [
            audit.record(
                conn,
                actor=actor,
                action="deposit.create",
                target_type="account",
                target_id="a",
                before=None,
                after={"amount_minor": n, "note": "caf\u00e9 \x00ok"},
                ip="127.0.0.1",
            )
            for n in range(5)
        ]
    with engine.connect() as conn:
        assert audit.verify(conn) is None

    # The database refuses edits and deletions, even by the table's owner.
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))

    # Someone with superuser rights disables the trigger and edits a row: verify names it.
    url = migrated_db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete")
        raw.execute("UPDATE audit_log SET after = '{\"amount_minor\": 1000000}' WHERE id = %s", (ids[2],))
    with engine.connect() as conn:
        assert audit.verify(conn) == ids[2]

    # Deleting a row (and fixing nothing else) breaks the link of the row after it.
    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("DELETE FROM audit_log WHERE id IN (%s, %s)", (ids[0], ids[2]))
    with engine.connect() as conn:
        assert audit.verify(conn) == ids[1]
    engine.dispose()
