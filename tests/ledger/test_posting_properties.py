"""Properties of the posting rules that are pure domain logic: the FX conversion and its legs
(ledger/fx.py), the balance rule (ledger/legs.py check_balanced, enforced by Posting) and the
legs a transfer posts with (ledger/transfers.py posting_plan).

The FX oracle here is exact rational arithmetic (fractions.Fraction), independent of the
module's integer tricks: every rounding must go the house's way, and by less than one minor
unit. No database: these run in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidAmount, UnbalancedTransaction
from ledger.fx import FixedSide, FxConversion, FxQuote, convert, fx_legs
from ledger.ids import house_account_id
from ledger.legs import Direction, Leg, check_balanced
from ledger.money import CURRENCY_EXPONENTS, MAX_MINOR, exponent
from ledger.postings import Posting, TransactionKind
from ledger.transfers import Transfer, TransferStatus, posting_plan

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

BPS = 10_000
CURRENCIES = sorted(CURRENCY_EXPONENTS)
SOURCE_ACCOUNT = uuid.UUID(int=1)
DESTINATION_ACCOUNT = uuid.UUID(int=2)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two different currencies; the exponents 0, 2 and 3 meet in every direction."""
    source = draw(st.sampled_from(["USD", "JPY", "BHD", *CURRENCIES]))
    destination = draw(st.sampled_from([c for c in ["USD", "JPY", "BHD", *CURRENCIES] if c != source]))
    return source, destination


# Rates from 1e-8 to 1e6 with up to 8 decimal places: Decimal only, never a float.
rates = st.builds(
    lambda mantissa, places: Decimal(mantissa).scaleb(-places),
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=8),
)
spreads = st.one_of(st.integers(min_value=0, max_value=BPS - 1), st.sampled_from([0, 1, 25, 9999]))
# Everyday amounts, any amount, and the top of the range (where results may overflow).
amounts = st.one_of(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=MAX_MINOR),
    st.integers(min_value=MAX_MINOR // 10**4, max_value=MAX_MINOR),
)
sides = st.sampled_from(list(FixedSide))


def exact_rate(rate: Decimal, source: str, destination: str) -> Fraction:
    """Destination minor units per source minor unit, exactly."""
    return Fraction(rate) * Fraction(10) ** (exponent(destination) - exponent(source))


def net_per_currency(legs: Sequence[Leg]) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[leg.currency] += leg.amount_minor if leg.direction is Direction.CREDIT else -leg.amount_minor
    return dict(net)


def net_per_account(legs: Sequence[Leg]) -> dict[uuid.UUID, int]:
    net: dict[uuid.UUID, int] = defaultdict(int)
    for leg in legs:
        net[leg.account_id] += leg.amount_minor if leg.direction is Direction.CREDIT else -leg.amount_minor
    return dict(net)


def assert_favours_the_house(c: FxConversion, fixed: FixedSide, amount: int) -> None:
    """Every rounding goes the house's way, and by less than one minor unit."""
    exact = exact_rate(c.rate, c.source_currency, c.destination_currency)
    assert c.spread_minor >= 0 and c.converted_source_minor > 0 and c.destination_amount_minor > 0
    assert c.converted_source_minor + c.spread_minor == c.source_amount_minor
    # The payee never gets more than the exact value of what was exchanged...
    assert c.destination_amount_minor <= c.converted_source_minor * exact
    # ...and the spread is never less than spread_bps of everything that left the customer.
    assert c.spread_minor * BPS >= c.source_amount_minor * c.spread_bps
    if fixed is FixedSide.SOURCE:
        assert c.source_amount_minor == amount
        # Rounded down by less than one unit, the spread up by less than one.
        assert c.destination_amount_minor + 1 > c.converted_source_minor * exact
        assert (c.spread_minor - 1) * BPS < c.source_amount_minor * c.spread_bps
    else:
        assert c.destination_amount_minor == amount
        # The customer pays the smallest amounts that satisfy the two rules above.
        assert (c.converted_source_minor - 1) * exact < c.destination_amount_minor
        assert (c.source_amount_minor - 1) * (BPS - c.spread_bps) < c.converted_source_minor * BPS


# -- FX conversion ----------------------------------------------------------------------------


@PROPERTIES
@given(pairs(), sides, amounts, rates, spreads)
@example(("USD", "EUR"), FixedSide.SOURCE, 1000, Decimal("0.9182"), 25)
@example(("USD", "EUR"), FixedSide.DESTINATION, 10000, Decimal("0.9182"), 25)
@example(("JPY", "BHD"), FixedSide.SOURCE, 1, Decimal("0.0025"), 0)
@example(("BHD", "JPY"), FixedSide.DESTINATION, MAX_MINOR, Decimal("400"), 9999)
@example(("USD", "JPY"), FixedSide.SOURCE, 3, Decimal("1"), 9999)
@example(("JPY", "BHD"), FixedSide.SOURCE, MAX_MINOR, Decimal("2"), 0)  # arrives beyond 2^63-1
def test_conversion_favours_the_house_or_is_refused_for_a_reason(
    pair: tuple[str, str], fixed: FixedSide, amount: int, rate: Decimal, spread_bps: int
) -> None:
    source, destination = pair
    exact = exact_rate(rate, source, destination)
    try:
        c = convert(source, destination, fixed, amount, rate, spread_bps)
    except InvalidAmount as err:
        event("refused")
        # Refused only when the result cannot be one minor unit or more, or cannot be stored.
        if fixed is FixedSide.SOURCE:
            arrives = math.floor((amount - math.ceil(Fraction(amount * spread_bps, BPS))) * exact)
            assert arrives < 1 or arrives > MAX_MINOR, err
        else:
            exchanged = math.ceil(amount / exact)
            assert math.ceil(Fraction(exchanged * BPS, BPS - spread_bps)) > MAX_MINOR, err
        return
    event("converted")
    assert (c.source_currency, c.destination_currency, c.fixed) == (source, destination, fixed)
    assert (c.rate, c.spread_bps) == (rate, spread_bps)
    assert max(c.source_amount_minor, c.destination_amount_minor) <= MAX_MINOR
    assert_favours_the_house(c, fixed, amount)


@PROPERTIES
@given(
    pairs(),
    sides,
    st.integers(min_value=10**6, max_value=10**12),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=4),
    st.integers(min_value=0, max_value=500),
)
def test_ordinary_transfers_always_convert(
    pair: tuple[str, str], fixed: FixedSide, amount: int, rate: Decimal, spread_bps: int
) -> None:
    """Not a vacuous property: with everyday amounts, rates and spreads nothing is refused."""
    c = convert(pair[0], pair[1], fixed, amount, rate, spread_bps)
    assert_favours_the_house(c, fixed, amount)


@PROPERTIES
@given(pairs(), sides, amounts, rates, spreads)
def test_fx_legs_balance_per_currency_and_move_what_the_conversion_says(
    pair: tuple[str, str], fixed: FixedSide, amount: int, rate: Decimal, spread_bps: int
) -> None:
    source, destination = pair
    try:
        c = convert(source, destination, fixed, amount, rate, spread_bps)
    except InvalidAmount:
        return  # covered by the property above
    legs = fx_legs(c, SOURCE_ACCOUNT, DESTINATION_ACCOUNT)
    check_balanced(legs)
    assert all(leg.amount_minor > 0 for leg in legs)
    assert net_per_currency(legs) == {source: 0, destination: 0}
    per_account = net_per_account(legs)
    assert per_account[SOURCE_ACCOUNT] == -c.source_amount_minor
    assert per_account[DESTINATION_ACCOUNT] == c.destination_amount_minor
    assert per_account[house_account_id("fx_liquidity", source)] == c.converted_source_minor
    assert per_account[house_account_id("fx_liquidity", destination)] == -c.destination_amount_minor
    # The spread is its own leg, never negative (absent when it rounds to zero).
    assert per_account.get(house_account_id("fx_revenue", source), 0) == c.spread_minor
    assert c.spread_minor >= 0
    assert all(leg.direction is Direction.CREDIT for leg in legs if leg.account_id == DESTINATION_ACCOUNT)
    # And a Posting takes them as they are.
    Posting(uuid.uuid4(), TransactionKind.FX_TRANSFER, tuple(legs))


# -- the balance rule -------------------------------------------------------------------------

accounts = st.integers(min_value=1, max_value=6).map(lambda n: uuid.UUID(int=n))
legs_strategy = st.builds(
    Leg,
    accounts,
    st.sampled_from(list(Direction)),
    st.integers(min_value=1, max_value=MAX_MINOR),
    st.sampled_from(["USD", "JPY", "BHD"]),
)


@st.composite
def balanced_legs(draw: st.DrawFn) -> list[Leg]:
    """Pairs of equal debits and credits in one currency each, shuffled."""
    legs: list[Leg] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        currency = draw(st.sampled_from(["USD", "JPY", "BHD"]))
        amount = draw(st.integers(min_value=1, max_value=MAX_MINOR))
        legs.append(Leg(draw(accounts), Direction.DEBIT, amount, currency))
        legs.append(Leg(draw(accounts), Direction.CREDIT, amount, currency))
    shuffled: list[Leg] = draw(st.permutations(legs))
    return shuffled


@PROPERTIES
@given(st.lists(legs_strategy, max_size=8))
def test_check_balanced_refuses_exactly_the_unbalanced_sets(legs: list[Leg]) -> None:
    balanced = len(legs) >= 2 and all(total == 0 for total in net_per_currency(legs).values())
    if balanced:
        check_balanced(legs)
        Posting(uuid.uuid4(), TransactionKind.TRANSFER, tuple(legs))
    else:
        with pytest.raises(UnbalancedTransaction):
            check_balanced(legs)
        with pytest.raises(UnbalancedTransaction):
            Posting(uuid.uuid4(), TransactionKind.TRANSFER, tuple(legs))


@PROPERTIES
@given(balanced_legs(), st.data())
def test_any_change_to_a_balanced_set_unbalances_it(legs: list[Leg], data: st.DataObject) -> None:
    check_balanced(legs)
    i = data.draw(st.integers(min_value=0, max_value=len(legs) - 1))
    leg = legs[i]
    changes = {
        "amount": dataclasses.replace(
            leg,
            amount_minor=data.draw(
                st.integers(min_value=1, max_value=MAX_MINOR).filter(lambda n: n != leg.amount_minor)
            ),
        ),
        "direction": leg.inverted(),
        "currency": dataclasses.replace(
            leg, currency=data.draw(st.sampled_from([c for c in ("USD", "JPY", "BHD") if c != leg.currency]))
        ),
    }
    for changed in changes.values():
        with pytest.raises(UnbalancedTransaction):
            check_balanced([*legs[:i], changed, *legs[i + 1 :]])
    with pytest.raises(UnbalancedTransaction):
        check_balanced([*legs[:i], *legs[i + 1 :]])  # a leg dropped
    with pytest.raises(UnbalancedTransaction):
        check_balanced([*legs, leg])  # a leg twice


@PROPERTIES
@given(balanced_legs())
def test_a_reversal_balances_and_cancels_every_account(legs: list[Leg]) -> None:
    reversal = [leg.inverted() for leg in legs]
    check_balanced(reversal)
    assert all(total == 0 for total in net_per_account([*legs, *reversal]).values())


# -- the legs a transfer posts with -----------------------------------------------------------


def transfer(source: str, destination: str, fixed: FixedSide, amount_minor: int) -> Transfer:
    now = datetime.now(UTC)
    tid = uuid.uuid4()
    return Transfer(
        id=tid,
        customer_id=uuid.uuid4(),
        source_account_id=SOURCE_ACCOUNT,
        destination_account_id=DESTINATION_ACCOUNT,
        amount_minor=amount_minor,
        currency=source if fixed is FixedSide.SOURCE else destination,
        source_currency=source,
        destination_currency=destination,
        source_amount_minor=amount_minor,
        destination_amount_minor=None,
        status=TransferStatus.PROCESSING,
        failure_reason=None,
        description=None,
        fx_quote_id=None,
        fx_rate=None,
        fx_spread_bps=None,
        fx_spread_minor=None,
        hold_id=uuid.uuid4(),
        transaction_id=None,
        reversal_transaction_id=None,
        workflow_id=f"transfer-{tid}",
        version=1,
        created_at=now,
        updated_at=now,
    )


@PROPERTIES
@given(st.sampled_from(CURRENCIES), st.integers(min_value=1, max_value=MAX_MINOR))
def test_a_same_currency_transfer_moves_its_amount_from_source_to_destination(currency: str, amount: int) -> None:
    kind, legs, conversion = posting_plan(transfer(currency, currency, FixedSide.SOURCE, amount), None)
    assert kind is TransactionKind.TRANSFER and conversion is None
    check_balanced(legs)
    assert net_per_account(legs) == {SOURCE_ACCOUNT: -amount, DESTINATION_ACCOUNT: amount}


@PROPERTIES
@given(pairs(), sides, amounts, rates, spreads)
def test_a_cross_currency_transfer_posts_the_conversion_of_its_quote(
    pair: tuple[str, str], fixed: FixedSide, amount: int, rate: Decimal, spread_bps: int
) -> None:
    source, destination = pair
    quote = FxQuote("q-1", source, destination, rate, spread_bps)
    t = transfer(source, destination, fixed, amount)
    try:
        expected = convert(source, destination, fixed, amount, rate, spread_bps)
    except InvalidAmount:
        with pytest.raises(InvalidAmount):
            posting_plan(t, quote)
        return
    kind, legs, conversion = posting_plan(t, quote)
    assert kind is TransactionKind.FX_TRANSFER and conversion == expected
    check_balanced(legs)
    assert sorted(map(_key, legs)) == sorted(map(_key, fx_legs(expected, SOURCE_ACCOUNT, DESTINATION_ACCOUNT)))


def _key(leg: Leg) -> tuple[Any, ...]:
    return (str(leg.account_id), leg.direction.value, leg.amount_minor, leg.currency)
