"""`verify_audit` (ledgerflow audit verify) on its own database: OK, then a tampered row named."""

from __future__ import annotations

from datetime import UTC

import psycopg
import pytest
from sqlalchemy import create_engine

from ledger import audit
from recon.audit_cli import verify_audit


def test_verify_ok_then_broken_at_the_edited_row(migrated_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = create_engine(migrated_db_url)
    actor = audit.Actor("staff", "s-1", "ops@example.test")
    with engine.begin() as conn:
        ids = [
            audit.record(conn, actor=actor, action=f"reversal.step{n}", target_type="reversal", target_id=str(n))
            for n in range(4)
        ]
    engine.dispose()

    assert verify_audit(migrated_db_url) == 0
    assert capsys.readouterr().out.strip() == "audit log OK (4 records)"

    # A superuser with the append-only trigger off edits one row.
    url = migrated_db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE id = %s", (ids[2],))
        [(at,)] = conn.execute("SELECT at FROM audit_log WHERE id = %s", (ids[2],)).fetchall()

    assert verify_audit(migrated_db_url) == 1
    out = capsys.readouterr().out.strip()
    assert out == f"audit log broken at record {ids[2]} ({at.astimezone(UTC).isoformat()}, reversal.step2)"


def test_unreadable_database(capsys: pytest.CaptureFixture[str]) -> None:
    from stack.service import free_port

    assert verify_audit(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing") == 2
    assert "audit log unreadable" in capsys.readouterr().err
