"""Money: integer minor units + ISO 4217 code; no float, NaN, bool or absurd amount gets in."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.errors import CurrencyMismatch, InvalidAmount, UnbalancedTransaction, UnsupportedCurrency
from ledger.ids import uuid7
from ledger.legs import Direction, Leg, check_balanced
from ledger.money import MAX_MINOR, Money, exponent, parse_amount_minor


@pytest.mark.parametrize(
    "value",
    [
        10.0,
        0.1,
        float("nan"),
        float("inf"),
        True,
        False,
        -1,
        0,
        2**63,
        2**64,
        "1.5",
        "-3",
        " 5",
        "1e3",
        "NaN",
        "",
        Decimal("NaN"),
        Decimal("10"),
        None,
        [1],
        "9" * 20,
    ],
)
def test_parse_rejects_non_integers_negatives_and_absurd_amounts(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(value, "USD")


def test_parse_accepts_ints_and_digit_strings_up_to_the_bigint_limit() -> None:
    assert Money.parse(1234, "USD") == Money(1234, "USD")
    assert Money.parse("0001234", "EUR") == Money(1234, "EUR")
    assert Money.parse(MAX_MINOR, "JPY").amount_minor == 2**63 - 1
    assert parse_amount_minor(0, allow_zero=True) == 0


def test_errors_are_clear_and_carry_the_api_code() -> None:
    with pytest.raises(InvalidAmount, match="never a float") as err:
        Money.parse(10.0, "USD")
    assert err.value.code == "invalid_amount"
    with pytest.raises(InvalidAmount, match="2\\^63"):
        Money.parse(2**63, "USD")


def test_unknown_currency_is_refused() -> None:
    for code in ("usd", "XXX", "", None, 840):
        with pytest.raises(UnsupportedCurrency):
            Money.parse(1, code)


def test_exponents() -> None:
    assert [exponent(c) for c in ("USD", "EUR", "GBP", "JPY", "CHF", "BHD")] == [2, 2, 2, 0, 2, 3]


def test_cross_currency_arithmetic_and_comparison_raise() -> None:
    usd, eur = Money(100, "USD"), Money(100, "EUR")
    for op in (lambda: usd + eur, lambda: usd - eur, lambda: usd < eur, lambda: usd >= eur):
        with pytest.raises(CurrencyMismatch):
            op()
    assert usd + Money(5, "USD") == Money(105, "USD")
    assert usd - Money(150, "USD") == Money(-50, "USD")
    assert usd * 3 == Money(300, "USD")
    with pytest.raises(TypeError):
        usd * 1.5  # type: ignore[operator]


def test_money_is_frozen_and_checked_on_construction() -> None:
    m = Money(1, "USD")
    with pytest.raises(AttributeError):
        m.amount_minor = 2  # type: ignore[misc]
    with pytest.raises(InvalidAmount):
        Money(1.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(True, "USD")
    with pytest.raises(InvalidAmount):
        Money(2**63, "USD")


def test_major_units_round_trip_exactly() -> None:
    assert Money.from_major("12.34", "USD") == Money(1234, "USD")
    assert Money.from_major("1.234", "BHD") == Money(1234, "BHD")
    assert Money.from_major("500", "JPY") == Money(500, "JPY")
    assert Money(1234, "USD").to_major() == Decimal("12.34")
    assert str(Money(5, "BHD")) == "0.005 BHD"
    for bad in ("1.001", "NaN", "1e30", "abc"):
        with pytest.raises(InvalidAmount):
            Money.from_major(bad, "USD")
    with pytest.raises(InvalidAmount):
        Money.from_major(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money.from_major("0.5", "JPY")


def test_legs_must_balance_per_currency() -> None:
    a, b = uuid7(), uuid7()
    check_balanced([Leg(a, Direction.DEBIT, 5, "USD"), Leg(b, Direction.CREDIT, 5, "USD")])
    with pytest.raises(UnbalancedTransaction):
        check_balanced([Leg(a, Direction.DEBIT, 5, "USD"), Leg(b, Direction.CREDIT, 4, "USD")])
    with pytest.raises(UnbalancedTransaction):
        check_balanced([Leg(a, Direction.DEBIT, 5, "USD"), Leg(b, Direction.CREDIT, 5, "EUR")])
    with pytest.raises(UnbalancedTransaction):
        check_balanced([Leg(a, Direction.DEBIT, 5, "USD")])
    with pytest.raises(InvalidAmount):
        Leg(a, Direction.DEBIT, 0, "USD")
