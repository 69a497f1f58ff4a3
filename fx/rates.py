"""The FX rates table and the provider interface the quoting code reads through.

Rates are managed by ops (`PUT /ops/v1/fx/rates/{base}/{quote}`) and seeded with sane defaults
by migration. A market feed can replace the table by implementing `RateProvider`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ledger.fx import parse_rate, validate_spread_bps
from ledger.money import validate_currency


@dataclass(frozen=True)
class Rate:
    """`rate` units of `quote` per one unit of `base` (mid-market), and the house spread."""

    base: str
    quote: str
    rate: Decimal
    spread_bps: int
    updated_at: datetime
    updated_by: str
    version: int


class UnsupportedPair(Exception):
    """No rate is known for this currency pair."""

    code = "unsupported_pair"


class RateProvider(Protocol):
    def current(self, base: str, quote: str) -> Rate:
        """The rate to quote now.

        Raises:
            UnsupportedPair: no rate for the pair.
        """
        ...


def _row_to_rate(row: object) -> Rate:
    return Rate(
        base=row.base,  # type: ignore[attr-defined]
        quote=row.quote,  # type: ignore[attr-defined]
        rate=Decimal(row.rate),  # type: ignore[attr-defined]
        spread_bps=int(row.spread_bps),  # type: ignore[attr-defined]
        updated_at=row.updated_at,  # type: ignore[attr-defined]
        updated_by=row.updated_by,  # type: ignore[attr-defined]
        version=int(row.version),  # type: ignore[attr-defined]
    )


_SELECT = "SELECT base, quote, rate, spread_bps, updated_at, updated_by, version FROM fx_rates"


def get_rate(conn: Connection, base: str, quote: str) -> Rate:
    """Raises:
    UnsupportedPair: no rate for the pair.
    """
    row = conn.execute(text(f"{_SELECT} WHERE base = :b AND quote = :q"), {"b": base, "q": quote}).first()
    if row is None:
        raise UnsupportedPair(f"no FX rate for {base}/{quote}")
    return _row_to_rate(row)


def list_rates(conn: Connection) -> list[Rate]:
    return [_row_to_rate(r) for r in conn.execute(text(f"{_SELECT} ORDER BY base, quote"))]


def set_rate(conn: Connection, *, base: str, quote: str, rate: object, spread_bps: object, updated_by: str) -> Rate:
    """Insert or replace a rate; the version goes up by one on every change.

    Raises:
        InvalidRate: a float, non-positive or absurd rate, or a spread outside 0..9999 bps.
        UnsupportedCurrency: an unknown currency code.
        CurrencyMismatch: base equals quote.
    """
    from ledger.errors import CurrencyMismatch

    validate_currency(base)
    validate_currency(quote)
    if base == quote:
        raise CurrencyMismatch("a rate needs two different currencies")
    parsed = parse_rate(rate)
    spread = validate_spread_bps(spread_bps)
    row = conn.execute(
        text(
            """
            INSERT INTO fx_rates (base, quote, rate, spread_bps, updated_at, updated_by, version)
            VALUES (:b, :q, :r, :s, now(), :by, 1)
            ON CONFLICT (base, quote) DO UPDATE
               SET rate = EXCLUDED.rate, spread_bps = EXCLUDED.spread_bps, updated_at = now(),
                   updated_by = EXCLUDED.updated_by, version = fx_rates.version + 1
            RETURNING base, quote, rate, spread_bps, updated_at, updated_by, version
            """
        ),
        {"b": base, "q": quote, "r": parsed, "s": spread, "by": updated_by},
    ).one()
    return _row_to_rate(row)


class TableRateProvider:
    """Reads the ops-managed `fx_rates` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def current(self, base: str, quote: str) -> Rate:
        with self._engine.connect() as conn:
            return get_rate(conn, base, quote)
