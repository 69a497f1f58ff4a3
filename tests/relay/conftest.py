"""Fixtures of the relay tests: a migrated database, the topics, a tail, background loops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ledger.db import make_engine
from ledger.service import Ledger
from relay.topics import ensure_topics
from tests.relay.helpers import Tail, Threads


@pytest.fixture(scope="session")
def relay_topics(kafka_bootstrap: str) -> str:
    ensure_topics(kafka_bootstrap)
    return kafka_bootstrap


@pytest.fixture
def tail(relay_topics: str) -> Tail:
    return Tail(relay_topics)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=5)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine)


@pytest.fixture
def threads() -> Iterator[Threads]:
    running = Threads()
    try:
        yield running
    finally:
        running.close()
    assert not running.errors, running.errors
