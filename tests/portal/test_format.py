"""portal/format.py: money by currency exponent, typed amounts, times (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.money import CURRENCY_EXPONENTS
from portal import format as fmt


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "USD", "1,234.56 USD"),
        (5, "EUR", "0.05 EUR"),
        (0, "GBP", "0.00 GBP"),
        (100, "CHF", "1.00 CHF"),
        (1234567, "JPY", "1,234,567 JPY"),
        (1234, "BHD", "1.234 BHD"),
        (1, "BHD", "0.001 BHD"),
        (-2550, "USD", "-25.50 USD"),
        (10**15, "USD", "10,000,000,000,000.00 USD"),
    ],
)
def test_format_money(minor: int, currency: str, text: str) -> None:
    assert fmt.format_money(minor, currency) == text


def test_unknown_amount_and_currency() -> None:
    assert fmt.format_money(None, "USD") == "—"
    assert fmt.format_money(150, "XYZ") == "1.50 XYZ"


def test_exponents_are_the_ledgers() -> None:
    assert {c: fmt.exponent(c) for c in CURRENCY_EXPONENTS} == CURRENCY_EXPONENTS
    assert (fmt.exponent("JPY"), fmt.exponent("BHD"), fmt.exponent("USD")) == (0, 3, 2)
    assert fmt.currencies()[:6] == ["USD", "EUR", "GBP", "CHF", "JPY", "BHD"]
    assert sorted(fmt.currencies()) == sorted(CURRENCY_EXPONENTS)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.5", "USD", 1250),
        ("12.50", "USD", 1250),
        ("1,234.56", "USD", 123456),
        ("1 234.56", "EUR", 123456),
        (" 7 ", "JPY", 7),
        ("1,200", "JPY", 1200),
        ("1.234", "BHD", 1234),
        ("0.001", "BHD", 1),
        ("0.01", "USD", 1),
        ("92233720368547758.07", "USD", 2**63 - 1),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert fmt.parse_amount(text, currency) == minor
    assert fmt.parse_amount(fmt.input_amount(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("", "USD", "Enter an amount."),
        ("abc", "USD", "Enter the amount as a number"),
        ("-5", "USD", "Enter the amount as a number"),
        ("1e3", "USD", "Enter the amount as a number"),
        ("NaN", "USD", "Enter the amount as a number"),
        ("1.234", "USD", "USD has at most 2 decimal places."),
        ("1.5", "JPY", "JPY has no decimal places."),
        ("0.0001", "BHD", "BHD has at most 3 decimal places."),
        ("0", "USD", "The amount must be more than zero."),
        ("0.00", "USD", "The amount must be more than zero."),
        ("92233720368547758.08", "USD", "That amount is too large."),
        ("1,23.45", "USD", "Enter the amount as a number"),
    ],
)
def test_parse_amount_refusals(text: str, currency: str, message: str) -> None:
    with pytest.raises(fmt.AmountError) as err:
        fmt.parse_amount(text, currency)
    assert str(err.value).startswith(message)


def test_times() -> None:
    assert fmt.rfc3339("2025-03-01T12:34:56.789+00:00") == "2025-03-01T12:34:56Z"
    assert fmt.rfc3339("2025-03-01T13:34:56+01:00") == "2025-03-01T12:34:56Z"
    assert fmt.rfc3339(datetime(2025, 3, 1, 12, 0)) == "2025-03-01T12:00:00Z"  # naive = UTC
    assert fmt.human_time("2025-03-01T12:34:56Z") == "2025-03-01 12:34 UTC"
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert fmt.seconds_left(now + timedelta(seconds=299.6), now) == 299
    assert fmt.seconds_left(now - timedelta(seconds=5), now) == 0
    assert fmt.seconds_left(None, now) == 0
    assert fmt.format_duration(299) == "4:59"
    assert fmt.format_duration(5) == "0:05"


def test_small_helpers() -> None:
    assert fmt.format_bps(25) == "0.25%"
    assert fmt.format_bps(150) == "1.50%"
    # UUIDv7 share their first block for a minute: the short id is the random tail.
    assert fmt.short_id("01931a2b-0000-7000-8000-00000abcdef1") == "0abcdef1"
