"""Migrations: from an empty database, idempotent, and in step with ledger.models."""

from __future__ import annotations

from typing import Any

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from ledger.migrate import upgrade
from ledger.models import Base


def test_upgrade_from_empty_twice_and_models_match(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # a second run finds nothing to do
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    ours = set(Base.metadata.tables)

    def about_ours(change: Any) -> bool:
        item = change[0] if isinstance(change, list) else change
        for part in item[1:]:
            table = getattr(part, "table", None)
            name = getattr(table, "name", None) or getattr(part, "name", None)
            if name in ours or (isinstance(part, str) and part in ours):
                return True
        return False

    assert [c for c in diff if about_ours(c)] == []
    with psycopg.connect(db_url.replace("+psycopg", "")) as pg:
        names = {r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert ours <= names
