"""fetch_fx_quote's store (fx.quotes.firm_quote) is idempotent per transfer: a retried
activity gets the quote it stored first, until that quote expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Engine

from fx.quotes import firm_quote
from fx.rates import Rate
from ledger.ids import uuid7

Raw = psycopg.Connection[Any]


class MovingRates:
    """A provider whose rate moves on every call (as a live feed's would between retries)."""

    def __init__(self) -> None:
        self.calls = 0

    def current(self, base: str, quote: str) -> Rate:
        self.calls += 1
        return Rate(base, quote, Decimal("0.9") + Decimal(self.calls) / 100, 25, datetime.now(UTC), "test", 1)


def _rows(raw: Raw, transfer_id: str) -> int:
    row = raw.execute("SELECT count(*) FROM fx_quotes WHERE transfer_id = %s", (transfer_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_retry_returns_the_stored_quote_and_writes_nothing(engine: Engine, raw: Raw) -> None:
    rates = MovingRates()
    transfer_id = str(uuid7())
    now = datetime.now(UTC)
    first = firm_quote(engine, rates, source="USD", destination="EUR", transfer_id=transfer_id, now=now, ttl_s=60)
    retried = firm_quote(
        engine,
        rates,
        source="USD",
        destination="EUR",
        transfer_id=transfer_id,
        now=now + timedelta(seconds=5),
        ttl_s=60,
    )
    assert retried.quote_id == first.quote_id
    assert (retried.rate, retried.spread_bps, retried.expires_at) == (first.rate, first.spread_bps, first.expires_at)
    assert _rows(raw, transfer_id) == 1
    assert rates.calls == 1

    # another transfer gets its own quote
    other = firm_quote(engine, rates, source="USD", destination="EUR", transfer_id=str(uuid7()), now=now, ttl_s=60)
    assert other.quote_id != first.quote_id


def test_an_expired_quote_is_replaced(engine: Engine, raw: Raw) -> None:
    rates = MovingRates()
    transfer_id = str(uuid7())
    now = datetime.now(UTC)
    first = firm_quote(engine, rates, source="USD", destination="EUR", transfer_id=transfer_id, now=now, ttl_s=60)
    later = firm_quote(
        engine,
        rates,
        source="USD",
        destination="EUR",
        transfer_id=transfer_id,
        now=now + timedelta(seconds=61),
        ttl_s=60,
    )
    assert later.quote_id != first.quote_id and later.rate != first.rate
    assert _rows(raw, transfer_id) == 2
