"""Legs: the debit and credit lines a ledger transaction is made of, and the balance rule."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from ledger.errors import UnbalancedTransaction
from ledger.money import Money, parse_amount_minor, validate_currency


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of a transaction: `amount_minor` (> 0) debited from or credited to an account.

    Raises (on construction):
        InvalidAmount: amount_minor not a positive int within range.
        UnsupportedCurrency: unknown currency.
    """

    account_id: UUID
    direction: Direction
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        parse_amount_minor(self.amount_minor)
        validate_currency(self.currency)

    @classmethod
    def debit(cls, account_id: UUID, amount: Money) -> Leg:
        return cls(account_id, Direction.DEBIT, amount.amount_minor, amount.currency)

    @classmethod
    def credit(cls, account_id: UUID, amount: Money) -> Leg:
        return cls(account_id, Direction.CREDIT, amount.amount_minor, amount.currency)

    @property
    def signed_minor(self) -> int:
        """Effect on the account's ledger balance: credits add, debits subtract."""
        return self.amount_minor if self.direction is Direction.CREDIT else -self.amount_minor

    def inverted(self) -> Leg:
        """The leg that undoes this one (used by reversals)."""
        other = Direction.CREDIT if self.direction is Direction.DEBIT else Direction.DEBIT
        return Leg(self.account_id, other, self.amount_minor, self.currency)

    def as_dict(self) -> dict[str, object]:
        return {
            "account_id": str(self.account_id),
            "direction": self.direction.value,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
        }


def check_balanced(legs: Sequence[Leg]) -> None:
    """Every transaction needs two legs or more and nets to zero in each currency.

    Raises:
        UnbalancedTransaction: fewer than two legs, or a currency whose debits != credits.
    """
    if len(legs) < 2:
        raise UnbalancedTransaction("a transaction needs at least two legs")
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[leg.currency] += leg.signed_minor
    off = {currency: total for currency, total in net.items() if total != 0}
    if off:
        raise UnbalancedTransaction(f"legs do not balance: net per currency {off}")
