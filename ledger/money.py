"""Money: an integer count of minor units and an ISO 4217 currency code.

No float ever becomes money: `Money.parse` refuses floats (even integral ones), NaN, bools
and strings that are not plain digits, and every amount stays inside PostgreSQL's bigint so
that what Python accepts the database can store.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Final

from ledger.errors import CurrencyMismatch, InvalidAmount, UnsupportedCurrency

# The largest amount a bigint column holds; anything above is refused as absurd.
MAX_MINOR: Final = 2**63 - 1

# ISO 4217 minor-unit exponents of the currencies the ledger keeps.
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "SGD": 2,
    "HKD": 2,
    "CNY": 2,
    "INR": 2,
    "MXN": 2,
    "BRL": 2,
    "ZAR": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


def validate_currency(currency: object) -> str:
    """Return `currency` if it is a kept ISO 4217 code.

    Raises:
        UnsupportedCurrency: not a string, or not a code listed in CURRENCY_EXPONENTS.
    """
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise UnsupportedCurrency(currency)
    return currency


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, BHD 3).

    Raises:
        UnsupportedCurrency: unknown code.
    """
    return CURRENCY_EXPONENTS[validate_currency(currency)]


def parse_amount_minor(value: object, *, allow_zero: bool = False) -> int:
    """Turn untrusted input into a positive count of minor units.

    Accepts an int or a string of ASCII digits; refuses bool, float (even 10.0), Decimal,
    NaN, signs, blanks, zero (unless allow_zero) and anything above 2^63-1.

    Raises:
        InvalidAmount: with a message saying which rule was broken.
    """
    if isinstance(value, bool):
        raise InvalidAmount("amount_minor must be an integer, not a boolean")
    if isinstance(value, float):
        raise InvalidAmount("amount_minor must be an integer count of minor units, never a float")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InvalidAmount(f"amount_minor must be a string of digits, got {value!r}")
        # Checked before int() so that a megabyte of digits is not converted at all.
        if len(value.lstrip("0")) > len(str(MAX_MINOR)):
            raise InvalidAmount("amount_minor is larger than 2^63-1 minor units")
        value = int(value)
    if not isinstance(value, int):
        raise InvalidAmount(f"amount_minor must be an integer, got {type(value).__name__}")
    if value < 0:
        raise InvalidAmount("amount_minor must not be negative")
    if value == 0 and not allow_zero:
        raise InvalidAmount("amount_minor must be positive")
    if value > MAX_MINOR:
        raise InvalidAmount("amount_minor is larger than 2^63-1 minor units")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency in minor units. Negative values exist (house balances);
    inputs from outside go through `Money.parse`, which only accepts positive amounts.

    Raises (on construction):
        InvalidAmount: amount_minor is not an int, or is outside +-(2^63-1).
        UnsupportedCurrency: unknown currency code.
    """

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise InvalidAmount(f"amount_minor must be an int, got {type(self.amount_minor).__name__}")
        if abs(self.amount_minor) > MAX_MINOR:
            raise InvalidAmount("amount_minor is outside the range of 2^63-1 minor units")
        validate_currency(self.currency)

    @classmethod
    def parse(cls, amount_minor: object, currency: object, *, allow_zero: bool = False) -> Money:
        """Money from untrusted input (an API body, a workflow payload).

        Raises:
            InvalidAmount: see `parse_amount_minor`.
            UnsupportedCurrency: unknown currency code.
        """
        code = validate_currency(currency)
        return cls(parse_amount_minor(amount_minor, allow_zero=allow_zero), code)

    @classmethod
    def from_major(cls, amount: str | Decimal, currency: str) -> Money:
        """Money from a decimal string in major units ("12.34" USD -> 1234 minor units).

        Raises:
            InvalidAmount: not a finite decimal, more decimal places than the currency has,
                negative, or out of range.
            UnsupportedCurrency: unknown currency code.
        """
        if isinstance(amount, bool) or not isinstance(amount, (str, Decimal)):
            raise InvalidAmount("major amounts must be given as a decimal string or Decimal, never a float")
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise InvalidAmount(f"not a decimal amount: {amount!r}") from exc
        if not value.is_finite():
            raise InvalidAmount("amount must be finite")
        if value.adjusted() > 20:
            # Far beyond 2^63 minor units whatever the exponent; refuse before any big-int work.
            raise InvalidAmount("amount is larger than 2^63-1 minor units")
        with localcontext() as ctx:
            ctx.prec = 80  # exact for every amount that passes the check above
            scaled = value.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise InvalidAmount(f"{currency} has {exponent(currency)} decimal places; got {amount}")
        return cls.parse(int(scaled), currency, allow_zero=True)

    def to_major(self) -> Decimal:
        """The amount in major units as an exact Decimal (1234 USD minor -> Decimal('12.34'))."""
        return Decimal(self.amount_minor).scaleb(-exponent(self.currency))

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} with {other.currency}", expected=self.currency, actual=other.currency
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        # Only integer scaling: a fractional factor would need a rounding rule (see ledger.fx).
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError("Money can only be multiplied by an int")
        return Money(self.amount_minor * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor < other.amount_minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor <= other.amount_minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor > other.amount_minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_minor >= other.amount_minor

    def is_positive(self) -> bool:
        return self.amount_minor > 0

    def __str__(self) -> str:
        return f"{self.to_major()} {self.currency}"
