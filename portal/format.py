"""Pure presentation helpers: money by currency exponent, amounts typed by people, times.

No I/O and no framework here, so the rules are unit-tested on their own (tests/portal/test_format.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from ledger.money import CURRENCY_EXPONENTS, MAX_MINOR

# The currencies offered first in the portal's pickers (the others follow alphabetically).
MAIN_CURRENCIES: Final = ("USD", "EUR", "GBP", "CHF", "JPY", "BHD")

_AMOUNT: Final = re.compile(r"^\d+(?:\.\d+)?$")
# Thousands separators people type: "1,234.50", "1 234.50", "1_234.50", "1'234.50".
_GROUPING: Final = re.compile(r"(?<=\d)[,\s_'](?=\d{3}(?:\D|$))")


class AmountError(ValueError):
    """A typed amount that is not a positive number of this currency's minor units."""


def currencies() -> list[str]:
    """Every currency the ledger keeps, the main ones first."""
    rest = sorted(c for c in CURRENCY_EXPONENTS if c not in MAIN_CURRENCIES)
    return [*MAIN_CURRENCIES, *rest]


def exponent(currency: str) -> int:
    """ISO 4217 minor-unit exponent (JPY 0, BHD 3, USD 2). An unknown code shows 2 decimals:
    the page must still render whatever the API sends."""
    return CURRENCY_EXPONENTS.get(currency, 2)


def format_amount(amount_minor: int, currency: str) -> str:
    """Minor units as a decimal number with thousands separators, without the code: 123456 USD -> "1,234.56"."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exp)
    text = f"{whole:,}"
    if exp:
        text += "." + str(fraction).zfill(exp)
    return sign + text


def format_money(amount_minor: int | None, currency: str) -> str:
    """ "1,234.56 USD", "1,234 JPY", "1.234 BHD"; an unknown amount is an em dash."""
    if amount_minor is None:
        return "—"
    return f"{format_amount(amount_minor, currency)} {currency}"


def input_amount(amount_minor: int, currency: str) -> str:
    """Minor units as a form field value ("1234.50"): no grouping, so it parses back unchanged."""
    return format_amount(amount_minor, currency).replace(",", "")


def parse_amount(text: str, currency: str) -> int:
    """What a person typed ("12.5", "1,234.56") as a positive integer of minor units.

    Decimal, never float. More decimals than the currency has is refused rather than rounded:
    silently changing an amount of money is worse than asking again.

    Raises:
        AmountError: empty, not a plain positive number, too many decimals, zero or too large.
    """
    cleaned = _GROUPING.sub("", text.strip())
    if not cleaned:
        raise AmountError("Enter an amount.")
    if not _AMOUNT.match(cleaned):
        raise AmountError("Enter the amount as a number, for example 12.50.")
    exp = exponent(currency)
    decimals = len(cleaned.partition(".")[2])
    if decimals > exp:
        if exp == 0:
            raise AmountError(f"{currency} has no decimal places.")
        raise AmountError(f"{currency} has at most {exp} decimal places.")
    try:
        minor = int(Decimal(cleaned).scaleb(exp))
    except InvalidOperation as err:  # pragma: no cover - the regex admits only plain decimals
        raise AmountError("Enter the amount as a number, for example 12.50.") from err
    if minor <= 0:
        raise AmountError("The amount must be more than zero.")
    if minor > MAX_MINOR:
        raise AmountError("That amount is too large.")
    return minor


def parse_time(value: str | datetime) -> datetime:
    """An RFC 3339 string (as the API sends) or a datetime, as an aware UTC datetime."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def rfc3339(value: str | datetime) -> str:
    """The machine-readable form for <time datetime>: UTC, seconds, "Z"."""
    return parse_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_time(value: str | datetime) -> str:
    """The text inside <time> before the browser localises it (and what a browser without
    JavaScript shows): unambiguous UTC."""
    return parse_time(value).strftime("%Y-%m-%d %H:%M UTC")


def seconds_left(expires_at: str | datetime | None, now: datetime) -> int:
    """Whole seconds from `now` until `expires_at` (never negative; 0 when unknown)."""
    if expires_at is None:
        return 0
    return max(0, int((parse_time(expires_at) - now).total_seconds()))


def format_duration(seconds: int) -> str:
    """A countdown as m:ss ("4:05")."""
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes}:{secs:02d}"


def format_bps(bps: int) -> str:
    """Basis points as a percentage: 25 -> "0.25%"."""
    return f"{Decimal(bps) / 100:.2f}%"


def account_number(number: object) -> str:
    """An account number as people read it, in groups of four (`LF77 1000 0000 0000 0001`)."""
    text = str(number or "")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def short_id(value: object) -> str:
    """The last 8 hex digits of a UUID: enough for a person to tell rows apart in a table. Not
    the first block: ids are UUIDv7, whose first 32 bits are the same for a minute at a time."""
    return str(value).replace("-", "")[-8:]
