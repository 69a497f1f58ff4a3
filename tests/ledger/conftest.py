"""Fixtures of the ledger tests: a migrated database per test and a Ledger over it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from ledger.accounts import Account
from ledger.db import make_engine
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=8, max_overflow=60)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(["USD", "EUR"])
    return ledger


@pytest.fixture
def raw(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain autocommit psycopg connection, for checks the Ledger API would not allow."""
    with psycopg.connect(migrated_db_url.replace("+psycopg", ""), autocommit=True) as conn:
        yield conn


def funded(ledger: Ledger, amount_minor: int, currency: str = "USD", customer_id: uuid.UUID | None = None) -> Account:
    """A new customer account holding `amount_minor` (deposited)."""
    account = ledger.open_account(customer_id or uuid.uuid4(), currency)
    if amount_minor:
        ledger.deposit(uuid7(), account.id, Money(amount_minor, currency))
    return account


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Row counts of every ledger table (to prove that a replay wrote nothing)."""
    tables = ["accounts", "account_balances", "ledger_transactions", "entries", "holds", "transfers", "outbox"]
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # type: ignore[index]
    counts["balances_version_sum"] = conn.execute("SELECT sum(version) FROM account_balances").fetchone()[0]  # type: ignore[index]
    counts["transfers_version_sum"] = conn.execute("SELECT coalesce(sum(version), 0) FROM transfers").fetchone()[0]  # type: ignore[index]
    return counts
