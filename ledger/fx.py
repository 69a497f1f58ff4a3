"""Cross-currency arithmetic: amounts, spread and legs, rounded in the house's favour.

Pure functions on ints and Decimals (never float). The rate is turned into an exact integer
fraction (Decimal.as_integer_ratio) so that every floor and ceiling below is exact, whatever
the size of the amount or the number of digits in the rate.

Shape of a cross-currency posting (TigerBeetle's currency-exchange recipe, spread as its own
transfer), for a customer sending SRC and a payee receiving DST:

    debit  customer:SRC          converted_source_minor   credit fx_liquidity:SRC
    debit  customer:SRC          spread_minor             credit fx_revenue:SRC
    debit  fx_liquidity:DST      destination_amount_minor credit payee:DST

so each currency nets to zero on its own. The house wins every rounding:
- the spread is at least `spread_bps` of what leaves the source (rounded up);
- the converted amount is rounded down when the source is fixed (the payee gets at most
  the exact value) and the source side rounded up when the destination is fixed (the
  customer pays at least the exact value).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from uuid import UUID

from ledger.errors import CurrencyMismatch, InvalidAmount, InvalidRate
from ledger.ids import house_account_id
from ledger.legs import Direction, Leg
from ledger.money import MAX_MINOR, exponent, parse_amount_minor, validate_currency

BPS_PER_UNIT = 10_000


class FixedSide(StrEnum):
    """Which amount the customer fixed: what leaves the source, or what arrives."""

    SOURCE = "source"
    DESTINATION = "destination"


def parse_rate(value: object) -> Decimal:
    """A rate from a Decimal or a decimal string ("0.9182").

    Raises:
        InvalidRate: a float, bool, NaN, infinity, zero or negative value.
    """
    if isinstance(value, bool) or not isinstance(value, (str, Decimal)):
        raise InvalidRate("an FX rate must be a Decimal or a decimal string, never a float")
    try:
        rate = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidRate(f"not a decimal rate: {value!r}") from exc
    if not rate.is_finite() or rate <= 0:
        raise InvalidRate(f"an FX rate must be finite and positive, got {value!r}")
    if rate.adjusted() > 12 or rate.adjusted() < -12:
        raise InvalidRate(f"FX rate {value!r} is outside any sane range")
    return rate


def validate_spread_bps(spread_bps: object) -> int:
    """Raises: InvalidRate unless 0 <= spread_bps < 10000 (an int)."""
    if isinstance(spread_bps, bool) or not isinstance(spread_bps, int) or not 0 <= spread_bps < BPS_PER_UNIT:
        raise InvalidRate(f"spread_bps must be an int in 0..9999, got {spread_bps!r}")
    return spread_bps


@dataclass(frozen=True, slots=True)
class FxQuote:
    """A firm (or indicative) quote: `rate` DST major units per 1 SRC major unit, mid-market;
    the house's margin is `spread_bps` of the source amount, booked to fx_revenue.

    Raises (on construction):
        InvalidRate: bad rate or spread.
        UnsupportedCurrency: unknown currency.
        CurrencyMismatch: both currencies equal.
    """

    quote_id: str
    source_currency: str
    destination_currency: str
    rate: Decimal
    spread_bps: int

    def __post_init__(self) -> None:
        validate_currency(self.source_currency)
        validate_currency(self.destination_currency)
        if self.source_currency == self.destination_currency:
            raise CurrencyMismatch("an FX quote needs two different currencies")
        object.__setattr__(self, "rate", parse_rate(self.rate))
        validate_spread_bps(self.spread_bps)


@dataclass(frozen=True, slots=True)
class FxConversion:
    """The amounts of one cross-currency transfer (all in minor units)."""

    source_currency: str
    destination_currency: str
    fixed: FixedSide
    source_amount_minor: int  # everything that leaves the customer's account
    converted_source_minor: int  # the part exchanged at the rate, credited to fx_liquidity:SRC
    spread_minor: int  # the house's margin, credited to fx_revenue:SRC
    destination_amount_minor: int  # what arrives, debited from fx_liquidity:DST
    rate: Decimal
    spread_bps: int


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _rate_fraction(rate: Decimal, source_currency: str, destination_currency: str) -> tuple[int, int]:
    """The rate in minor units as an exact fraction num/den (DST minor per SRC minor)."""
    num, den = rate.as_integer_ratio()
    shift = exponent(destination_currency) - exponent(source_currency)
    if shift >= 0:
        return num * 10**shift, den
    return num, den * 10**-shift


def convert(
    source_currency: str,
    destination_currency: str,
    fixed: FixedSide,
    amount_minor: int,
    rate: Decimal,
    spread_bps: int,
) -> FxConversion:
    """Amounts of a cross-currency transfer, rounding in the house's favour.

    `amount_minor` is in the source currency when `fixed` is SOURCE, else in the destination
    currency.

    Raises:
        InvalidAmount: amount not positive, too small to convert to one minor unit, or a
            result beyond 2^63-1.
        InvalidRate: bad rate or spread.
        UnsupportedCurrency: unknown currency.
        CurrencyMismatch: both currencies equal.
    """
    validate_currency(source_currency)
    validate_currency(destination_currency)
    if source_currency == destination_currency:
        raise CurrencyMismatch("a conversion needs two different currencies")
    amount_minor = parse_amount_minor(amount_minor)
    rate = parse_rate(rate)
    spread_bps = validate_spread_bps(spread_bps)
    num, den = _rate_fraction(rate, source_currency, destination_currency)

    if fixed is FixedSide.SOURCE:
        source_total = amount_minor
        spread = _ceil_div(source_total * spread_bps, BPS_PER_UNIT)
        converted = source_total - spread
        destination = converted * num // den
    else:
        destination = amount_minor
        converted = _ceil_div(destination * den, num)
        # Smallest total whose (rounded-up) spread still leaves `converted` to exchange.
        source_total = _ceil_div(converted * BPS_PER_UNIT, BPS_PER_UNIT - spread_bps)
        spread = source_total - converted

    if converted <= 0 or destination <= 0:
        raise InvalidAmount("amount is too small to convert into one minor unit")
    if max(source_total, destination) > MAX_MINOR:
        raise InvalidAmount("converted amount is larger than 2^63-1 minor units")
    return FxConversion(
        source_currency=source_currency,
        destination_currency=destination_currency,
        fixed=fixed,
        source_amount_minor=source_total,
        converted_source_minor=converted,
        spread_minor=spread,
        destination_amount_minor=destination,
        rate=rate,
        spread_bps=spread_bps,
    )


def fx_legs(conversion: FxConversion, source_account_id: UUID, destination_account_id: UUID) -> list[Leg]:
    """The legs of a cross-currency posting (see the module docstring); the spread pair is
    left out when the spread rounds to zero (a leg must move at least one minor unit)."""
    src, dst = conversion.source_currency, conversion.destination_currency
    liquidity_src = house_account_id("fx_liquidity", src)
    liquidity_dst = house_account_id("fx_liquidity", dst)
    legs = [
        Leg(source_account_id, Direction.DEBIT, conversion.converted_source_minor, src),
        Leg(liquidity_src, Direction.CREDIT, conversion.converted_source_minor, src),
        Leg(liquidity_dst, Direction.DEBIT, conversion.destination_amount_minor, dst),
        Leg(destination_account_id, Direction.CREDIT, conversion.destination_amount_minor, dst),
    ]
    if conversion.spread_minor > 0:
        legs += [
            Leg(source_account_id, Direction.DEBIT, conversion.spread_minor, src),
            Leg(house_account_id("fx_revenue", src), Direction.CREDIT, conversion.spread_minor, src),
        ]
    return legs
