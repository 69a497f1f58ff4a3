"""The built-in fraud rules at their edges: each fires at the edge and not one step before
(pure domain logic, no I/O), the verdict they combine into, and parameter validation."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from risk.rules import Facts, InvalidRule, Rule, UnknownRule, assess, fires, validate_params

QUIET = Facts(amount_minor=100, currency="USD", recent_count=1, known_payee=True, median_minor=None, account_age_s=1e9)

VELOCITY = Rule("velocity", True, "review", {"count": 3, "window_s": 600})
NEW_PAYEE = Rule("new_payee_amount", True, "review", {"amount_minor": {"USD": 50_000}})
SPIKE = Rule("amount_spike", True, "block", {"factor": "2.5", "days": 30})
NEW_ACCOUNT = Rule("new_account", True, "review", {"hours": 24, "amount_minor": {"USD": 20_000}})


def test_velocity_fires_past_count() -> None:
    assert not fires(VELOCITY, replace(QUIET, recent_count=3))
    assert fires(VELOCITY, replace(QUIET, recent_count=4))


def test_new_payee_amount_fires_at_threshold_for_a_first_payment_only() -> None:
    first = replace(QUIET, known_payee=False)
    assert not fires(NEW_PAYEE, replace(first, amount_minor=49_999))
    assert fires(NEW_PAYEE, replace(first, amount_minor=50_000))
    assert not fires(NEW_PAYEE, replace(QUIET, amount_minor=50_000))  # a known payee
    assert not fires(NEW_PAYEE, replace(first, amount_minor=10**9, currency="EUR"))  # no EUR threshold


def test_amount_spike_fires_at_factor_times_median() -> None:
    facts = replace(QUIET, median_minor=Decimal(1000))
    assert not fires(SPIKE, replace(facts, amount_minor=2_499))
    assert fires(SPIKE, replace(facts, amount_minor=2_500))
    assert not fires(SPIKE, replace(QUIET, amount_minor=10**9))  # no history, no median


def test_new_account_fires_while_young_and_at_threshold() -> None:
    young = replace(QUIET, account_age_s=24 * 3600 - 1)
    assert not fires(NEW_ACCOUNT, replace(young, amount_minor=19_999))
    assert fires(NEW_ACCOUNT, replace(young, amount_minor=20_000))
    assert not fires(NEW_ACCOUNT, replace(young, amount_minor=20_000, account_age_s=24 * 3600))


def test_verdict_is_the_strongest_action_with_every_reason() -> None:
    rules = [VELOCITY, NEW_PAYEE, SPIKE, NEW_ACCOUNT]
    assert assess(rules, QUIET).verdict == "allow" and assess(rules, QUIET).reasons == ()
    reviewed = assess(rules, replace(QUIET, recent_count=9, known_payee=False, amount_minor=60_000))
    assert reviewed.verdict == "review" and reviewed.reasons == ("new_payee_amount", "velocity")
    blocked = assess(rules, replace(QUIET, recent_count=9, median_minor=Decimal(10), amount_minor=25))
    assert blocked.verdict == "block" and blocked.reasons == ("amount_spike", "velocity")
    disabled = [replace(rule, enabled=False) for rule in rules]
    assert assess(disabled, replace(QUIET, recent_count=9)).verdict == "allow"


def test_params_are_validated() -> None:
    assert validate_params("velocity", {"count": 5, "window_s": 60}) == {"count": 5, "window_s": 60}
    assert validate_params("amount_spike", {"factor": 2.5, "days": 7}) == {"factor": "2.5", "days": 7}
    invalid: list[tuple[str, dict[str, Any]]] = [
        ("velocity", {"count": 0, "window_s": 60}),
        ("velocity", {"count": 5}),
        ("velocity", {"count": True, "window_s": 60}),
        ("velocity", {"count": 5, "window_s": 10**12}),
        ("amount_spike", {"factor": "1e30", "days": 7}),
        ("amount_spike", {"factor": 1, "days": 7}),
        ("amount_spike", {"factor": "NaN", "days": 7}),
        ("new_payee_amount", {"amount_minor": {"USD": 10.5}}),
        ("new_payee_amount", {"amount_minor": {"XXX": 10}}),
        ("new_account", {"hours": 1, "amount_minor": {}}),
    ]
    for name, params in invalid:
        with pytest.raises(InvalidRule):
            validate_params(name, params)
    with pytest.raises(UnknownRule):
        validate_params("nope", {})
