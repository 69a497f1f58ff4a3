"""FX arithmetic: Decimal and ints only, legs balanced per currency, every rounding to the house."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

import pytest

from ledger.errors import CurrencyMismatch, InvalidAmount, InvalidRate
from ledger.fx import FixedSide, FxQuote, convert, fx_legs
from ledger.ids import house_account_id, uuid7
from ledger.money import exponent


def net_per_currency(legs: list) -> dict[str, int]:  # type: ignore[type-arg]
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[leg.currency] += leg.signed_minor
    return dict(net)


def test_fixed_source_known_values() -> None:
    # 10.00 USD at 0.9182, 25 bps: spread ceil(2.5) = 3 cents, 997 converted, floor(915.45) = 915
    c = convert("USD", "EUR", FixedSide.SOURCE, 1000, Decimal("0.9182"), 25)
    assert (c.source_amount_minor, c.spread_minor, c.converted_source_minor, c.destination_amount_minor) == (
        1000,
        3,
        997,
        915,
    )


def test_fixed_destination_known_values() -> None:
    # to deliver 100.00 EUR at 0.9182: ceil(10000 / 0.9182) = 10891 cents, then the spread on top
    c = convert("USD", "EUR", FixedSide.DESTINATION, 10000, Decimal("0.9182"), 25)
    assert c.destination_amount_minor == 10000
    assert c.converted_source_minor == 10891
    assert c.source_amount_minor == 10919  # ceil(10891 * 10000 / 9975)
    assert c.spread_minor == 28


def test_exponents_are_respected() -> None:
    # 1.000 BHD (1000 fils) -> JPY at 390.5: 390.5 yen -> 390 (floor), no spread
    c = convert("BHD", "JPY", FixedSide.SOURCE, 1000, Decimal("390.5"), 0)
    assert c.destination_amount_minor == 390 and c.spread_minor == 0
    # 1000 yen -> USD at 0.0067 = 6.70 USD = 670 cents
    assert convert("JPY", "USD", FixedSide.SOURCE, 1000, Decimal("0.0067"), 0).destination_amount_minor == 670


@pytest.mark.parametrize("seed", range(5))
def test_rounding_always_favours_the_house(seed: int) -> None:
    rng = random.Random(seed)
    currencies = ["USD", "EUR", "GBP", "JPY", "CHF", "BHD"]
    for _ in range(400):
        src, dst = rng.sample(currencies, 2)
        rate = Decimal(rng.randint(1, 5_000_000)) / Decimal(10 ** rng.randint(2, 7))
        bps = rng.choice([0, 1, 25, 50, 99, 150])
        amount = rng.randint(1, 10**9)
        fixed = rng.choice(list(FixedSide))
        try:
            c = convert(src, dst, fixed, amount, rate, bps)
        except InvalidAmount:
            continue  # too small to convert: refused rather than rounded to nothing
        shift = Decimal(10) ** (exponent(dst) - exponent(src))
        exact_destination = Decimal(c.converted_source_minor) * rate * shift
        # the payee never gets more than the exact value of what was converted...
        assert c.destination_amount_minor <= exact_destination
        # ...and at most one minor unit less (fixed source) / exactly what was asked (fixed destination)
        if fixed is FixedSide.SOURCE:
            assert exact_destination - c.destination_amount_minor < 1
            assert c.source_amount_minor == amount
        else:
            assert c.destination_amount_minor == amount
            # and the converted amount is the smallest that delivers it
            assert Decimal(c.converted_source_minor - 1) * rate * shift < amount
        # the spread is at least bps of what leaves the source
        assert c.spread_minor * 10_000 >= c.source_amount_minor * bps
        assert c.source_amount_minor == c.converted_source_minor + c.spread_minor


def test_legs_go_through_liquidity_accounts_and_balance_per_currency() -> None:
    source, destination = uuid7(), uuid7()
    c = convert("USD", "EUR", FixedSide.SOURCE, 12345, Decimal("0.9182"), 25)
    legs = fx_legs(c, source, destination)
    assert net_per_currency(legs) == {"USD": 0, "EUR": 0}
    accounts = {leg.account_id for leg in legs}
    assert house_account_id("fx_liquidity", "USD") in accounts
    assert house_account_id("fx_liquidity", "EUR") in accounts
    revenue = [leg for leg in legs if leg.account_id == house_account_id("fx_revenue", "USD")]
    assert len(revenue) == 1 and revenue[0].amount_minor == c.spread_minor
    assert sum(-leg.signed_minor for leg in legs if leg.account_id == source) == c.source_amount_minor
    assert sum(leg.signed_minor for leg in legs if leg.account_id == destination) == c.destination_amount_minor
    # no spread -> no spread legs (a leg moves at least one minor unit)
    assert len(fx_legs(convert("USD", "EUR", FixedSide.SOURCE, 100, Decimal("0.9"), 0), source, destination)) == 4


def test_bad_rates_and_amounts_are_refused() -> None:
    for rate in (0.9, Decimal("NaN"), Decimal("-1"), Decimal("0"), "abc", True, Decimal("Infinity")):
        with pytest.raises(InvalidRate):
            convert("USD", "EUR", FixedSide.SOURCE, 100, rate, 0)  # type: ignore[arg-type]
    for bps in (-1, 10_000, 2.5, True):
        with pytest.raises(InvalidRate):
            convert("USD", "EUR", FixedSide.SOURCE, 100, Decimal("1"), bps)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        convert("USD", "EUR", FixedSide.SOURCE, 1, Decimal("0.5"), 0)  # half a cent: too small
    with pytest.raises(InvalidAmount):
        convert("USD", "EUR", FixedSide.SOURCE, 10.0, Decimal("0.5"), 0)  # type: ignore[arg-type]
    with pytest.raises(CurrencyMismatch):
        convert("USD", "USD", FixedSide.SOURCE, 100, Decimal("1"), 0)
    with pytest.raises(CurrencyMismatch):
        FxQuote("q", "EUR", "EUR", Decimal("1"), 0)
    assert FxQuote("q", "USD", "EUR", "0.9182", 10).rate == Decimal("0.9182")  # type: ignore[arg-type]
