"""Properties of Money (ledger/money.py), for any input rather than a few examples: what the
module accepts round-trips exactly, and everything else is refused with its named error.

Pure functions only: no database, so these run in seconds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.errors import CurrencyMismatch, InvalidAmount, UnsupportedCurrency
from ledger.money import CURRENCY_EXPONENTS, MAX_MINOR, Money, exponent, parse_amount_minor, validate_currency

# Deterministic in CI (the same examples on every run, nothing stored in .hypothesis/ of the
# shared working tree) and modest, so the module stays fast. A settings object applied per
# test rather than a loaded profile: load_profile would change every other module's settings.
PROPERTIES = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,  # two shared cores: a slow example is not a failure
    suppress_health_check=[HealthCheck.too_slow],
)

CURRENCIES = sorted(CURRENCY_EXPONENTS)
currencies = st.sampled_from(CURRENCIES)
# The three exponents the contract names (docs/api.md: USD 2, JPY 0, BHD 3), then all the others.
named_exponents = st.sampled_from(["USD", "JPY", "BHD"])
positive_minor = st.integers(min_value=1, max_value=MAX_MINOR)
# Bias towards the edges: hypothesis already favours small ints; add the top of the range.
any_minor = st.one_of(positive_minor, st.integers(min_value=MAX_MINOR - 1000, max_value=MAX_MINOR))
unknown_currencies = st.one_of(
    st.text(max_size=5).filter(lambda c: c not in CURRENCY_EXPONENTS),
    st.sampled_from(CURRENCIES).map(str.lower),
    st.sampled_from(["XXX", "XTS", "BTC", "US D", "USD ", " USD", "EURO", ""]),
)
non_strings = st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.just(["USD"]))


def test_the_exponents_the_contract_names() -> None:
    assert (exponent("USD"), exponent("JPY"), exponent("BHD")) == (2, 0, 3)


# -- parsing minor units ----------------------------------------------------------------------


@PROPERTIES
@given(any_minor, currencies)
@example(1, "USD")
@example(MAX_MINOR, "BHD")
def test_any_int_in_range_round_trips(amount: int, currency: str) -> None:
    money = Money.parse(amount, currency)
    assert (money.amount_minor, money.currency) == (amount, currency)
    assert type(money.amount_minor) is int
    # The same amount as a string of digits (leading zeros too) parses to the same Money.
    assert Money.parse(str(amount), currency) == money
    assert Money.parse("000" + str(amount), currency) == money


@PROPERTIES
@given(st.floats(allow_nan=True, allow_infinity=True), currencies)
@example(10.0, "USD")
@example(float("nan"), "USD")
@example(float("inf"), "JPY")
@example(-0.0, "USD")
def test_floats_are_refused_even_integral_nan_and_infinite(value: float, currency: str) -> None:
    with pytest.raises(InvalidAmount, match="float"):
        Money.parse(value, currency)
    with pytest.raises(InvalidAmount):
        Money(value, currency)  # type: ignore[arg-type]


@PROPERTIES
@given(st.booleans(), currencies, st.booleans())
def test_bools_are_refused(value: bool, currency: str, allow_zero: bool) -> None:
    with pytest.raises(InvalidAmount, match="boolean"):
        Money.parse(value, currency, allow_zero=allow_zero)
    with pytest.raises(InvalidAmount):
        Money(value, currency)


@PROPERTIES
@given(st.integers(max_value=-1), currencies, st.booleans())
@example(-1, "USD", True)
@example(-MAX_MINOR - 1, "USD", True)
def test_negative_amounts_are_refused(value: int, currency: str, allow_zero: bool) -> None:
    with pytest.raises(InvalidAmount, match="negative"):
        Money.parse(value, currency, allow_zero=allow_zero)
    # As text, a sign is not a digit.
    with pytest.raises(InvalidAmount, match="digits"):
        Money.parse(str(value), currency, allow_zero=allow_zero)


@PROPERTIES
@given(currencies, st.integers(min_value=1, max_value=30))
def test_zero_is_refused_unless_allowed(currency: str, zeros: int) -> None:
    for value in (0, "0" * zeros):
        with pytest.raises(InvalidAmount, match="positive"):
            Money.parse(value, currency)
        assert Money.parse(value, currency, allow_zero=True) == Money(0, currency)


@PROPERTIES
@given(st.integers(min_value=MAX_MINOR + 1), currencies, st.booleans())
@example(MAX_MINOR + 1, "USD", False)
@example(2**64, "JPY", True)
def test_over_two_to_the_63_minus_one_is_refused(value: int, currency: str, allow_zero: bool) -> None:
    # The parser itself, not only the Money it would build, refuses it.
    with pytest.raises(InvalidAmount, match="2\\^63-1"):
        parse_amount_minor(value, allow_zero=allow_zero)
    with pytest.raises(InvalidAmount, match="2\\^63-1"):
        Money.parse(value, currency, allow_zero=allow_zero)
    with pytest.raises(InvalidAmount, match="2\\^63-1"):
        Money.parse(str(value), currency, allow_zero=allow_zero)
    with pytest.raises(InvalidAmount):
        Money(value, currency)
    with pytest.raises(InvalidAmount):
        Money(-value, currency)


@PROPERTIES
@given(st.text(min_size=1).filter(lambda s: not (s.isascii() and s.isdigit())), currencies)
@example("1.5", "USD")
@example(" 12", "USD")
@example("1_000", "USD")
@example("+5", "USD")
@example("١٢", "USD")  # Arabic-Indic digits: str.isdigit() says yes, money says no
@example("²", "USD")
@example("1e3", "USD")
@example("NaN", "USD")
@example("", "USD")
def test_strings_that_are_not_plain_ascii_digits_are_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount, match="digits"):
        Money.parse(text, currency)


@PROPERTIES
@given(
    st.one_of(st.decimals(), st.complex_numbers(), st.none(), st.lists(st.integers(), max_size=2), st.binary()),
    currencies,
)
@example(Decimal("10"), "USD")
@example(Decimal("NaN"), "USD")
def test_other_types_are_refused(value: Any, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(value, currency)


@PROPERTIES
@given(unknown_currencies, positive_minor)
def test_unknown_currencies_are_refused(currency: str, amount: int) -> None:
    with pytest.raises(UnsupportedCurrency):
        Money.parse(amount, currency)
    with pytest.raises(UnsupportedCurrency):
        Money(amount, currency)
    with pytest.raises(UnsupportedCurrency):
        exponent(currency)
    with pytest.raises(UnsupportedCurrency):
        Money.from_major("1", currency)


@PROPERTIES
@given(non_strings)
def test_a_currency_must_be_a_string(currency: Any) -> None:
    with pytest.raises(UnsupportedCurrency):
        validate_currency(currency)


@PROPERTIES
@given(st.one_of(st.integers(), st.text(max_size=25), st.floats(), st.booleans()), st.booleans())
@example(MAX_MINOR + 1, False)
@example(str(MAX_MINOR + 1), True)
def test_parse_amount_minor_returns_an_int_in_range_or_refuses(value: Any, allow_zero: bool) -> None:
    """Whatever comes in, the answer is an int in [0 or 1, 2^63-1] or InvalidAmount, never
    another exception."""
    try:
        parsed = parse_amount_minor(value, allow_zero=allow_zero)
    except InvalidAmount:
        return
    assert type(parsed) is int and (0 if allow_zero else 1) <= parsed <= MAX_MINOR


# -- arithmetic ------------------------------------------------------------------------------

OPERATIONS: list[Callable[[Money, Money], object]] = [
    operator.add,
    operator.sub,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
]


@PROPERTIES
@given(st.data(), positive_minor, positive_minor, currencies)
def test_arithmetic_across_currencies_raises(data: st.DataObject, a: int, b: int, currency: str) -> None:
    other = data.draw(st.sampled_from([c for c in CURRENCIES if c != currency]))
    for op in OPERATIONS:
        with pytest.raises(CurrencyMismatch):
            op(Money(a, currency), Money(b, other))


@PROPERTIES
@given(
    st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    currencies,
)
def test_arithmetic_in_one_currency_is_exact_or_refused(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    for op, exact in ((operator.add, a + b), (operator.sub, a - b)):
        if abs(exact) > MAX_MINOR:
            with pytest.raises(InvalidAmount):
                op(x, y)
        else:
            assert op(x, y) == Money(exact, currency)
    assert (x < y, x <= y, x > y, x >= y) == (a < b, a <= b, a > b, a >= b)
    negated = -x
    assert -negated == x and x + negated == Money(0, currency)


@PROPERTIES
@given(positive_minor, currencies, st.one_of(st.floats(), st.decimals(), st.booleans(), st.fractions()))
def test_money_scales_by_ints_only(amount: int, currency: str, factor: Any) -> None:
    with pytest.raises(TypeError):
        Money(amount, currency) * factor


# -- major units ------------------------------------------------------------------------------


def _places(text: str) -> int:
    return len(text.partition(".")[2])


@PROPERTIES
@given(st.integers(min_value=0, max_value=MAX_MINOR), st.one_of(named_exponents, currencies))
@example(0, "USD")
@example(1, "BHD")
@example(MAX_MINOR, "JPY")
def test_major_strings_round_trip_per_exponent(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    major = money.to_major()
    text = str(major)
    # Formatting: exactly as many decimal places as the currency has, in plain notation.
    assert "E" not in text.upper() and _places(text) == exponent(currency)
    assert str(money) == f"{text} {currency}"
    # Parsing the text (or the Decimal) back gives the same Money.
    assert Money.from_major(text, currency) == money
    assert Money.from_major(major, currency) == money
    assert major * 10 ** exponent(currency) == amount


@PROPERTIES
@given(st.integers(min_value=-MAX_MINOR, max_value=-1), currencies)
def test_negative_amounts_format_but_do_not_parse_back(amount: int, currency: str) -> None:
    text = str(Money(amount, currency).to_major())
    assert text.startswith("-") and _places(text) == exponent(currency)
    with pytest.raises(InvalidAmount, match="negative"):
        Money.from_major(text, currency)


@st.composite
def too_precise(draw: st.DrawFn) -> tuple[str, str]:
    """A major amount with more decimal places than its currency has (the last one not 0)."""
    currency = draw(st.one_of(named_exponents, currencies))
    whole = draw(st.integers(min_value=0, max_value=10**12))
    extra = draw(st.integers(min_value=1, max_value=6))
    digits = draw(
        st.text("0123456789", min_size=exponent(currency) + extra - 1, max_size=exponent(currency) + extra - 1)
    )
    last = draw(st.sampled_from("123456789"))
    return f"{whole}.{digits}{last}", currency


@PROPERTIES
@given(too_precise())
@example(("0.001", "USD"))
@example(("1.5", "JPY"))
@example(("0.0001", "BHD"))
def test_more_decimal_places_than_the_currency_has_are_refused(case: tuple[str, str]) -> None:
    text, currency = case
    with pytest.raises(InvalidAmount, match="decimal places"):
        Money.from_major(text, currency)
    with pytest.raises(InvalidAmount, match="decimal places"):
        Money.from_major(Decimal(text), currency)


@PROPERTIES
@given(st.integers(min_value=0, max_value=10**15), currencies, st.integers(min_value=1, max_value=5))
def test_trailing_zeros_beyond_the_exponent_are_the_same_amount(amount: int, currency: str, zeros: int) -> None:
    text = str(Money(amount, currency).to_major())
    padded = text + ("" if "." in text else ".") + "0" * zeros
    assert Money.from_major(padded, currency) == Money(amount, currency)


@PROPERTIES
@given(st.one_of(named_exponents, currencies), st.integers(min_value=1, max_value=10**6))
def test_major_amounts_over_the_range_are_refused(currency: str, excess: int) -> None:
    too_big = Decimal(MAX_MINOR + excess).scaleb(-exponent(currency))
    with pytest.raises(InvalidAmount, match="2\\^63-1"):
        Money.from_major(str(too_big), currency)


@PROPERTIES
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.integers(),
        st.sampled_from(["NaN", "sNaN", "Infinity", "-Infinity", "1,00", "1.2.3", "", " ", "twelve", "0x10"]),
        st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]),
    ),
    currencies,
)
def test_major_amounts_that_are_not_finite_decimals_are_refused(value: Any, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.from_major(value, currency)
