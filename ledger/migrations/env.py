"""Alembic environment of the ledger schema.

The database URL comes from, in order: an open connection handed over programmatically
(`config.attributes["connection"]`, what ledger.migrate.upgrade does), `-x url=...` on the
command line, the LEDGERFLOW_DATABASE_URL environment variable, or `sqlalchemy.url` in the
config. Nothing is read from other packages' settings: the ledger migrates on its own.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from ledger.db import normalize_url
from ledger.models import Base

# One history for the whole project: other layers add their revisions to this chain.
VERSION_TABLE = "alembic_version"
# Two processes migrating at once (launcher and tests, two workers) queue on this lock.
MIGRATION_LOCK_KEY = 0x1ED6E5F10  # arbitrary, fixed

config = context.config


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("LEDGERFLOW_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=..., or set LEDGERFLOW_DATABASE_URL")
    return normalize_url(url)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _migrate(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
