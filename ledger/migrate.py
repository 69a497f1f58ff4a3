"""Run the ledger's Alembic migrations from code (the launcher, the tests, `ledgerflow migrate`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, pool

from ledger import repeatable
from ledger.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Config pointing at ledger/migrations, built in code so that it works wherever the
    package is installed (no dependency on the repository's alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(url: str, revision: str = "head") -> list[str]:
    """Bring the database at `url` to `revision` (default: the latest), then apply the SQL
    files (ledger/sql/) that changed or are new, as far as that revision allows; returns the
    files applied. Safe to call from several processes at once: they queue on an advisory
    lock and the later ones find nothing to do."""
    applied: list[str] = []

    def action(config: Config, conn: Connection) -> None:
        command.upgrade(config, revision)
        applied.extend(repeatable.apply_pending(conn, ScriptDirectory.from_config(config)))

    _run(url, action)
    return applied


def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to `revision` (default: drop every ledger table). The SQL files'
    records are cleared (a downgrade may drop their functions): the next upgrade re-applies
    them."""

    def action(config: Config, conn: Connection) -> None:
        command.downgrade(config, revision)
        repeatable.forget_all(conn)

    _run(url, action)


def _run(url: str, action: Callable[[Config, Connection], None]) -> None:
    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            action(config, conn)
    finally:
        engine.dispose()
