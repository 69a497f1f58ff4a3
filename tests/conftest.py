"""Session-wide real infrastructure for the tests.

One embedded stack per test session, on free ports under a temporary directory, so a test
run never touches a developer's running stack. Each part starts the first time a test asks
for it (a pure unit test starts nothing) and everything stops when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import postgres
from stack.ephemeral import EphemeralStack, PgServer

# Risk review waits for a verdict from the risk consumer on Kafka; most suites run a worker
# with no relay and no Kafka, where every transfer would wait and go to review. They run with
# it off; the risk tests (tests/risk/) and the chaos harness turn it on explicitly.
os.environ.setdefault("LEDGERFLOW_RISK_ENABLED", "false")

# Kept as a name the tests import (fixture type hints).
TestStack = EphemeralStack
TestStack.__test__ = False  # type: ignore[attr-defined]  # not a test class


@pytest.fixture(scope="session")
def test_stack() -> Iterator[EphemeralStack]:
    # Not under pytest's basetemp: pytest keeps /tmp/pytest-of-<user> private (0700), which the
    # unprivileged PostgreSQL user could not traverse when two test sessions overlap.
    home = Path(tempfile.mkdtemp(prefix="ledgerflow-test-"))
    stack = EphemeralStack(home)
    try:
        yield stack
    finally:
        stack.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(test_stack: TestStack) -> PgServer:
    return test_stack.postgres()


@pytest.fixture
def db_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(host=pg_server.host, port=pg_server.port, dbname=name)
    try:
        yield pg_server.url(name)
    finally:
        postgres.drop_database(host=pg_server.host, port=pg_server.port, dbname=name)


@pytest.fixture(scope="session")
def migrated_template(pg_server: PgServer) -> str:
    """A database migrated to head once per session, used as the template of `migrated_db_url`."""
    from ledger.migrate import upgrade

    name = f"tpl_{uuid.uuid4().hex[:12]}"
    postgres.ensure_database(host=pg_server.host, port=pg_server.port, dbname=name)
    upgrade(pg_server.url(name))
    return name


@pytest.fixture
def migrated_db_url(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    """A fresh database already at the latest migration (copied from the session template)."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(
        host=pg_server.host, port=pg_server.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(migrated_template))
        )
    try:
        yield pg_server.url(name)
    finally:
        postgres.drop_database(host=pg_server.host, port=pg_server.port, dbname=name)


@pytest.fixture(scope="session")
def temporal_address(test_stack: TestStack) -> str:
    return test_stack.temporal()


@pytest.fixture(scope="session")
def temporal_ui_port(test_stack: TestStack) -> int:
    """The Web UI of the session's Temporal server (served under TEMPORAL_UI_PATH)."""
    test_stack.temporal()
    return test_stack.settings.temporal_ui_port


@pytest.fixture(scope="session")
def kafka_bootstrap(test_stack: TestStack) -> str:
    return test_stack.kafka()
