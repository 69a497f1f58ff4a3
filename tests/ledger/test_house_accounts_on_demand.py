"""The one retry that creates missing house accounts (ledger.service._ensuring_house): a posting
that needs a house account nobody created yet creates it and succeeds; any other missing
account is refused as it was, and creates nothing."""

from __future__ import annotations

import uuid

import pytest

from ledger.accounts import AccountKind
from ledger.errors import AccountNotFound
from ledger.ids import house_account_id, uuid7
from ledger.money import Money
from ledger.service import Ledger


def test_a_deposit_creates_the_missing_house_accounts_of_its_currency(ledger: Ledger) -> None:
    # The fixture created USD and EUR house accounts only.
    with pytest.raises(AccountNotFound):
        ledger.get_account(house_account_id(AccountKind.SETTLEMENT, "GBP"))
    account = ledger.open_account(uuid.uuid4(), "GBP")
    ledger.deposit(uuid7(), account.id, Money(1_000, "GBP"))
    assert ledger.balance(account.id).available_minor == 1_000
    for kind in (AccountKind.SETTLEMENT, AccountKind.FX_LIQUIDITY, AccountKind.FX_REVENUE):
        assert ledger.get_account(house_account_id(kind, "GBP")).kind is kind


def test_a_deposit_to_a_missing_account_is_refused_and_creates_nothing(ledger: Ledger) -> None:
    missing = uuid.uuid4()
    with pytest.raises(AccountNotFound) as err:
        ledger.deposit(uuid7(), missing, Money(1_000, "CHF"))
    assert err.value.account_id == missing
    with pytest.raises(AccountNotFound):
        ledger.get_account(house_account_id(AccountKind.SETTLEMENT, "CHF"))
