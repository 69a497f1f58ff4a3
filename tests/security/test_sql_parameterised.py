"""No SQL in api/ (nor otp/, security/) is built from runtime values: security/sqlcheck.py over the
source, plus proof that the checker catches the usual ways of getting it wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from security.sqlcheck import check_paths, check_source

REPO = Path(__file__).resolve().parents[2]


def test_api_otp_and_security_build_no_sql_from_runtime_values() -> None:
    findings = check_paths([REPO / "api", REPO / "otp", REPO / "security"])
    assert not findings, "\n".join(map(str, findings))


UNSAFE = {
    "f-string": "def f(conn, email):\n    conn.execute(text(f\"SELECT * FROM customers WHERE email = '{email}'\"))",
    "percent": "def f(cur, name):\n    cur.execute(\"SELECT * FROM t WHERE n = '%s'\" % name)",
    "format": 'def f(conn, order):\n    conn.execute(text("SELECT * FROM t ORDER BY {}".format(order)))',
    "concatenation": 'def f(conn, where):\n    q = "SELECT * FROM t WHERE " + where\n    conn.execute(text(q))',
    "appended input": (
        "def f(conn, status):\n"
        "    where = ['TRUE']\n"
        "    where.append(f'status = {status}')\n"
        "    conn.execute(text(' AND '.join(where)))"
    ),
    "attribute": "def f(conn, request):\n    conn.exec_driver_sql(request.query_params['q'])",
    "helper without LiteralString": "def run(conn, sql: str):\n    conn.execute(sql)",
    "dynamic call to a LiteralString helper": (
        "def one(conn, sql: LiteralString):\n    conn.execute(sql)\n"
        "def f(conn, table):\n    one(conn, f'SELECT * FROM {table}')"
    ),
}

SAFE = {
    "literal with binds": 'def f(conn, i):\n    conn.execute(text("SELECT * FROM t WHERE id = :id"), {"id": i})',
    "constant columns": 'COLS = ("a", "b")\ndef f(conn):\n    conn.execute(text(f"SELECT {\', \'.join(COLS)} FROM t"))',
    "table from a constant map": (
        "TABLES = {'c': 'customers', 's': 'staff'}\n"
        "def f(conn, realm, u):\n    table = TABLES[realm]\n"
        "    conn.execute(text(f'SELECT id FROM {table} WHERE email = :u'), {'u': u})"
    ),
    "optional filters": (
        "def f(conn, email, after):\n"
        "    where = ['TRUE']\n    params = {}\n"
        "    if email:\n        where.append('email = :email')\n        params['email'] = email\n"
        "    if after:\n        where += ['id < :after']\n"
        "    conn.execute(text(f\"SELECT * FROM t WHERE {' AND '.join(where)}\"), params)"
    ),
    "LiteralString helper": (
        "def one(conn, sql: LiteralString, params):\n    conn.execute(sql, params)\n"
        "def f(conn, i):\n    one(conn, 'SELECT * FROM t WHERE id = %(i)s', {'i': i})"
    ),
    "psycopg composition": (
        "def f(conn, name):\n    conn.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))"
    ),
}


@pytest.mark.parametrize("source", UNSAFE.values(), ids=UNSAFE.keys())
def test_checker_flags_sql_built_from_input(source: str) -> None:
    assert check_source(source), source


@pytest.mark.parametrize("source", SAFE.values(), ids=SAFE.keys())
def test_checker_accepts_parameterised_sql(source: str) -> None:
    assert check_source(source) == [], source
