"""The built-in fraud rules and the verdict they give: pure functions over facts.

Each rule looks at one `Facts` (gathered from the database by risk.assess) and either fires
or not. A verdict is `block` if any firing rule's action is `block`, else `review` if any
rule fired, else `allow`; its reasons are the names of the rules that fired, sorted.

Edges (each is tested on both sides):
- velocity (count, window_s): fires when the customer made MORE than `count` transfers in the
  `window_s` seconds up to this one, this one included (`count` is what is allowed);
- new_payee_amount (amount_minor per currency): fires on the customer's first transfer to a
  destination account (no earlier posted one to it) whose amount is AT OR ABOVE the threshold;
- amount_spike (factor, days): fires when the amount is AT LEAST factor x the median of the
  customer's posted transfers in that currency over the last `days` days (no history: no median,
  no fire);
- new_account (hours, amount_minor per currency): fires when the source account is younger
  than `hours` and the amount is AT OR ABOVE the threshold.
Amounts are what leaves the source account, in its currency (as for the limits). A currency a
threshold does not name is not checked by that rule. Factors are exact decimals, never floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from ledger.errors import LedgerError
from ledger.money import validate_currency
from ledger.states import RiskAction, Verdict

Action = Literal["review", "block"]

RULE_NAMES: Final = ("velocity", "new_payee_amount", "amount_spike", "new_account")


class InvalidRule(LedgerError, ValueError):
    code = "invalid_rule"


class UnknownRule(LedgerError):
    code = "rule_not_found"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    enabled: bool
    action: Action
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules need to know about one transfer (see risk.assess.gather_facts)."""

    amount_minor: int
    currency: str
    # velocity: transfers in the rule's window, this one included
    recent_count: int
    # new_payee_amount: whether an earlier transfer to this destination was posted
    known_payee: bool
    # amount_spike: median of the posted amounts in the rule's window (None: no history)
    median_minor: Decimal | None
    # new_account: the source account's age in seconds at initiation
    account_age_s: float


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: Verdict
    reasons: tuple[str, ...]


def _threshold(params: Mapping[str, Any], currency: str) -> int | None:
    value = params.get("amount_minor", {}).get(currency)
    return int(value) if value is not None else None


def fires(rule: Rule, facts: Facts) -> bool:
    p = rule.params
    if rule.name == "velocity":
        return facts.recent_count > int(p["count"])
    if rule.name == "new_payee_amount":
        threshold = _threshold(p, facts.currency)
        return threshold is not None and not facts.known_payee and facts.amount_minor >= threshold
    if rule.name == "amount_spike":
        if facts.median_minor is None:
            return False
        return Decimal(facts.amount_minor) >= Decimal(str(p["factor"])) * facts.median_minor
    if rule.name == "new_account":
        threshold = _threshold(p, facts.currency)
        young = facts.account_age_s < int(p["hours"]) * 3600
        return threshold is not None and young and facts.amount_minor >= threshold
    raise UnknownRule(rule.name)


def assess(rules: Sequence[Rule], facts: Facts) -> Assessment:
    fired = [rule for rule in rules if rule.enabled and fires(rule, facts)]
    reasons = tuple(sorted(rule.name for rule in fired))
    if any(RiskAction(rule.action) is RiskAction.BLOCK for rule in fired):
        return Assessment(Verdict.BLOCK, reasons)
    if fired:
        return Assessment(Verdict.REVIEW, reasons)
    return Assessment(Verdict.ALLOW, ())


# Upper bounds that keep every window a valid interval for the database (and sane): a year of
# seconds or hours, ten years of days, a million transfers.
MAXIMA: Final = {"count": 1_000_000, "window_s": 366 * 86_400, "days": 3_660, "hours": 366 * 24}
MAX_MINOR: Final = 2**63 - 1


def _positive_int(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAXIMA[name]:
        raise InvalidRule(f"{name} must be an integer from 1 to {MAXIMA[name]}")
    return value


def _thresholds(params: Mapping[str, Any]) -> dict[str, int]:
    raw = params.get("amount_minor")
    if not isinstance(raw, dict) or not raw:
        raise InvalidRule("amount_minor must be an object of currency -> minor units")
    out: dict[str, int] = {}
    for currency, value in raw.items():
        try:
            validate_currency(currency)
        except LedgerError as err:
            raise InvalidRule(f"unsupported currency {currency!r}") from err
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_MINOR:
            raise InvalidRule(f"amount_minor of {currency} must be a positive integer of minor units")
        out[str(currency)] = value
    return out


def validate_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's parameters, checked and with nothing else in them.

    Raises: UnknownRule, InvalidRule.
    """
    if name not in RULE_NAMES:
        raise UnknownRule(name)
    expected = {
        "velocity": {"count", "window_s"},
        "new_payee_amount": {"amount_minor"},
        "amount_spike": {"factor", "days"},
        "new_account": {"hours", "amount_minor"},
    }[name]
    if set(params) != expected:
        raise InvalidRule(f"{name} takes exactly {', '.join(sorted(expected))}")
    if name == "velocity":
        return {"count": _positive_int(params, "count"), "window_s": _positive_int(params, "window_s")}
    if name == "new_payee_amount":
        return {"amount_minor": _thresholds(params)}
    if name == "amount_spike":
        factor = params["factor"]
        # A JSON number or a decimal string; kept as given (an int stays an int), compared exactly.
        if isinstance(factor, bool) or not isinstance(factor, (int, float, str)):
            raise InvalidRule("factor must be a number greater than 1")
        try:
            exact = Decimal(str(factor))
        except InvalidOperation as err:
            raise InvalidRule("factor must be a number greater than 1") from err
        if not exact.is_finite() or exact <= 1 or exact > 1_000_000:
            raise InvalidRule("factor must be a number greater than 1 (and at most 1,000,000)")
        return {"factor": factor if isinstance(factor, int) else str(exact), "days": _positive_int(params, "days")}
    return {"hours": _positive_int(params, "hours"), "amount_minor": _thresholds(params)}
