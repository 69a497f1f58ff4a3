"""Migration 0013_payees: existing accounts get numbers, new ones too, never reused; down and up."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ledger import account_numbers
from ledger.migrate import downgrade, upgrade

BEFORE = "0009_outbox_cursor"
PAYEE_TABLES = {"payees", "standing_orders", "standing_order_runs", "transfer_sca"}


def _open(pg: psycopg.Connection[tuple[object, ...]], n: int) -> None:
    for _ in range(n):
        pg.execute(
            "INSERT INTO accounts (id, kind, customer_id, currency) VALUES (%s, 'customer', %s, 'USD')",
            (uuid.uuid4(), uuid.uuid4()),
        )


def test_backfill_assign_unique_immutable_and_down_up(db_url: str) -> None:
    upgrade(db_url, BEFORE)
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as pg:
        _open(pg, 3)
        upgrade(db_url)
        _open(pg, 2)
        numbers = [r[0] for r in pg.execute("SELECT account_number FROM accounts ORDER BY created_at").fetchall()]
        assert len(numbers) == 5 and len(set(numbers)) == 5
        assert all(account_numbers.is_valid(n) for n in numbers), numbers
        # The database's arithmetic is the Python module's.
        serial = pg.execute("SELECT nextval('account_number_seq')").fetchone()
        assert serial is not None
        expected = account_numbers.make("1000" + f"{serial[0]:012d}")
        assert pg.execute("SELECT ledger_account_number(%s)", (serial[0],)).fetchone() == (expected,)
        with pytest.raises(psycopg.DatabaseError, match="immutable"):
            pg.execute("UPDATE accounts SET account_number = %s", (expected,))

        downgrade(db_url, BEFORE)
        tables = {r[0] for r in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert not PAYEE_TABLES & tables
        upgrade(db_url)
        again = {r[0] for r in pg.execute("SELECT account_number FROM accounts").fetchall()}
        assert len(again) == 5 and all(account_numbers.is_valid(n) for n in again)
