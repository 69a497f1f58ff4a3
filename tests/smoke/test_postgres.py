"""The embedded PostgreSQL is real, answers SQL, and keeps its data across a restart."""

from __future__ import annotations

import psycopg

from stack.ephemeral import PgServer
from tests.conftest import TestStack


def test_sql_round_trip(pg_server: PgServer, db_url: str) -> None:
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO t VALUES (1, 'hello')")
        row = conn.execute("SELECT note, current_setting('server_version_num')::int FROM t").fetchone()
    assert row is not None
    assert row[0] == "hello"
    assert row[1] >= 180000  # the wheel's PostgreSQL 18, not some system server


def test_data_survives_restart(test_stack: TestStack, pg_server: PgServer, db_url: str) -> None:
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    test_stack.restart("postgres")
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT v FROM kept").fetchone()
    assert row == (42,)
