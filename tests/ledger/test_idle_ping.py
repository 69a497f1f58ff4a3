"""ledger/db.py's idle ping: a pooled connection that sat idle past the threshold is checked at
checkout, and one the server dropped meanwhile (a PostgreSQL restart) is replaced before the
caller sees it; a connection back in the pool a moment ago is used as it is."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.db import connection, make_engine


def backend_pid(engine: Engine) -> int:
    with connection(engine) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def terminate(db_url: str, pid: int) -> None:
    with psycopg.connect(db_url.replace("postgresql+psycopg:", "postgresql:"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def count_pings(engine: Engine) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(1)
        return bool(original(dbapi_conn))

    engine.dialect.do_ping = counted  # type: ignore[method-assign,assignment]
    return pings


def test_a_connection_dropped_while_idle_is_replaced_at_checkout(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pre_ping=True, ping_after_idle_s=0.2)
    try:
        first = backend_pid(engine)
        terminate(db_url, first)  # as a restart would, while the connection sits in the pool
        time.sleep(0.3)
        # The caller gets a live connection, on a new backend, without an error.
        assert backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_back_a_moment_ago_is_not_pinged(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pre_ping=True, ping_after_idle_s=60)
    try:
        pings = count_pings(engine)
        pid = backend_pid(engine)
        for _ in range(5):
            assert backend_pid(engine) == pid
        assert pings == []
    finally:
        engine.dispose()


def test_zero_means_every_checkout_is_pinged(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pre_ping=True, ping_after_idle_s=0)
    try:
        pings = count_pings(engine)
        for _ in range(3):
            backend_pid(engine)
        assert len(pings) >= 2  # every checkout after the first connect
    finally:
        engine.dispose()


def test_a_hot_connection_the_server_dropped_fails_the_call_and_is_not_reused(db_url: str) -> None:
    """Inside the threshold nothing is checked: the call fails (the API answers 503 and the
    client retries) and the dead connection leaves the pool."""
    engine = make_engine(db_url, pool_size=1, max_overflow=0, pre_ping=True, ping_after_idle_s=60)
    try:
        first = backend_pid(engine)
        terminate(db_url, first)
        with pytest.raises(psycopg.OperationalError):
            backend_pid(engine)
        assert backend_pid(engine) != first
    finally:
        engine.dispose()
