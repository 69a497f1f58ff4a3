"""Session-wide real infrastructure for the tests.

One embedded stack per test session, on free ports under a temporary directory, so a test
run never touches a developer's running stack. Each part starts the first time a test asks
for it (a pure unit test starts nothing) and everything stops when the session ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import Settings
from stack import postgres
from stack.launcher import Stack
from stack.service import Service, free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    bin_dir: Path

    def url(self, dbname: str) -> str:
        return postgres.database_url(host=self.host, port=self.port, dbname=dbname)


class TestStack:
    """Lazily started parts of one embedded stack, stopped at session end."""

    __test__ = False  # a fixture helper, not a test class

    def __init__(self, home: Path) -> None:
        ports = [free_port() for _ in range(6)]
        self.settings = Settings(
            home=home,
            host="127.0.0.1",
            pg_port=ports[0],
            temporal_address=f"127.0.0.1:{ports[1]}",
            temporal_ui_port=ports[2],
            kafka_bootstrap=f"127.0.0.1:{ports[3]}",
            kafka_controller_port=ports[4],
            api_port=ports[5],
        )
        self.stack = Stack(self.settings, log=lambda message: None)
        self.services: dict[str, Service] = {}

    def _start(self, name: str, service: Service) -> Service:
        if name not in self.services:
            self.stack.start(service, "[test]")
            self.services[name] = service
        return self.services[name]

    def postgres(self) -> PgServer:
        self._start("postgres", self.stack.postgres())
        return PgServer(self.settings.host, self.settings.pg_port, postgres.pg_bin_dir())

    def temporal(self) -> str:
        self._start("temporal", self.stack.temporal(headless=True))
        return self.settings.temporal_address

    def kafka(self) -> str:
        if "kafka" not in self.services:
            # Jars are a cache, not data: share the repo's download instead of resolving again.
            from stack import kafka

            libs = kafka.ensure_kafka_libs(REPO / ".ledgerflow" / "kafka-dist")
            service = kafka.kafka_service(
                home=self.settings.home / "kafka",
                libs=libs,
                host=self.settings.host,
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                log_path=self.settings.home / "logs" / "kafka.log",
            )
            self._start("kafka", service)
        return self.settings.kafka_bootstrap

    def restart(self, name: str) -> None:
        """Stop and start one part on the same data (for fault-injection tests)."""
        service = self.services[name]
        service.stop()
        service.start()
        service.wait_ready()

    def close(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()


@pytest.fixture(scope="session")
def test_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestStack]:
    stack = TestStack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.close()


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
def kafka_bootstrap(test_stack: TestStack) -> str:
    return test_stack.kafka()
