"""Quotes: indicative ones for the portal preview, firm ones (stored, expiring) for postings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine

from fx.rates import RateProvider
from ledger.fx import FixedSide, FxConversion, convert
from ledger.uow import UnitOfWork


@dataclass(frozen=True)
class FirmQuote:
    quote_id: str
    source_currency: str
    destination_currency: str
    rate: Decimal
    spread_bps: int
    expires_at: datetime


class FxQuoteRepository:
    """The firm quotes a unit of work stores (table fx_quotes), one live quote per transfer."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def live_for(self, transfer_id: str, source: str, destination: str, now: datetime) -> FirmQuote | None:
        """The transfer's newest quote for the pair still valid at `now`, if any. Takes the
        transfer's quote lock first (until the unit ends), so two attempts at once agree."""
        conn = self._uow.conn
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("fx_quote:" + transfer_id,))
        row = conn.execute(
            "SELECT id::text, source_currency, destination_currency, rate, spread_bps, expires_at FROM fx_quotes "
            "WHERE transfer_id = %(t)s AND source_currency = %(s)s AND destination_currency = %(d)s "
            "AND expires_at > %(now)s ORDER BY created_at DESC, id LIMIT 1",
            {"t": transfer_id, "s": source, "d": destination, "now": now},
        ).fetchone()
        return None if row is None else FirmQuote(*row)

    def add(self, quote: FirmQuote, *, transfer_id: str, now: datetime) -> None:
        self._uow.conn.execute(
            "INSERT INTO fx_quotes (id, transfer_id, source_currency, destination_currency, rate, spread_bps, "
            "created_at, expires_at) VALUES (%(id)s, %(t)s, %(s)s, %(d)s, %(r)s, %(bps)s, %(now)s, %(exp)s)",
            {
                "id": quote.quote_id,
                "t": transfer_id,
                "s": quote.source_currency,
                "d": quote.destination_currency,
                "r": quote.rate,
                "bps": quote.spread_bps,
                "now": now,
                "exp": quote.expires_at,
            },
        )


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
    """The transfer's firm quote, stored so the posting can cite it. Idempotent (the
    activity's retries): while the transfer's last quote for the pair is unexpired, that
    quote is returned and nothing is written; only once it expired is a new one taken from
    the provider.

    Raises:
        UnsupportedPair: the provider has no rate for the pair.
    """
    with UnitOfWork(engine) as uow:
        quotes = FxQuoteRepository(uow)
        live = quotes.live_for(transfer_id, source, destination, now)
        if live is not None:
            return live
        rate = provider.current(source, destination)
        quote = FirmQuote(
            quote_id=str(uuid.uuid4()),
            source_currency=source,
            destination_currency=destination,
            rate=rate.rate,
            spread_bps=rate.spread_bps,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        quotes.add(quote, transfer_id=transfer_id, now=now)
        uow.commit()
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
