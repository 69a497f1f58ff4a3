"""Quotes: indicative ones for the portal preview, firm ones (stored, expiring) for postings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.engine import Engine

from fx.rates import RateProvider
from ledger.fx import FixedSide, FxConversion, convert


@dataclass(frozen=True)
class FirmQuote:
    quote_id: str
    source_currency: str
    destination_currency: str
    rate: Decimal
    spread_bps: int
    expires_at: datetime


def firm_quote(
    engine: Engine,
    provider: RateProvider,
    *,
    source: str,
    destination: str,
    transfer_id: str,
    now: datetime,
    ttl_s: int,
) -> FirmQuote:
    """Take a firm quote from the provider and store it, so the posting can cite it.

    Raises:
        UnsupportedPair: the provider has no rate for the pair.
    """
    rate = provider.current(source, destination)
    quote = FirmQuote(
        quote_id=str(uuid.uuid4()),
        source_currency=source,
        destination_currency=destination,
        rate=rate.rate,
        spread_bps=rate.spread_bps,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO fx_quotes (id, transfer_id, source_currency, destination_currency, rate, spread_bps, "
                "created_at, expires_at) VALUES (:id, :t, :s, :d, :r, :bps, :now, :exp)"
            ),
            {
                "id": quote.quote_id,
                "t": transfer_id,
                "s": source,
                "d": destination,
                "r": quote.rate,
                "bps": quote.spread_bps,
                "now": now,
                "exp": quote.expires_at,
            },
        )
    return quote


def indicative_quote(
    provider: RateProvider, *, source: str, destination: str, amount_minor: int, fixed: FixedSide
) -> FxConversion:
    """What a transfer would convert to at the current rate (not stored, not binding).

    Raises:
        UnsupportedPair: no rate for the pair.
        InvalidAmount: the amount is not a positive integer or too small to convert.
    """
    rate = provider.current(source, destination)
    return convert(source, destination, fixed, amount_minor, rate.rate, rate.spread_bps)
