"""Run the ledger's Alembic migrations from code (the launcher, the tests, `ledgerflow migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool

from ledger.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Config pointing at ledger/migrations, built in code so that it works wherever the
    package is installed (no dependency on the repository's alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the latest). Safe to call from
    several processes at once: they queue on an advisory lock and the later ones find nothing
    to do."""
    _run(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to `revision` (default: drop every ledger table)."""
    _run(url, lambda config: command.downgrade(config, revision))


def _run(url: str, action: object) -> None:
    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            assert callable(action)
            action(config)
    finally:
        engine.dispose()
