"""Ledgerflow's ledger: the domain that counts money, and its storage.

Imports nothing from api/, workflows/, activities/, Temporal or Kafka. Entry point:
`ledger.service.Ledger` over an engine from `ledger.db.make_engine`; schema via
`ledger.migrate.upgrade(url)`.
"""

from ledger.accounts import Account, AccountKind, AccountStatus
from ledger.balances import Balance, Page, StatementEntry, TrialBalanceLine
from ledger.db import make_engine
from ledger.fx import FixedSide, FxConversion, FxQuote, convert, fx_legs
from ledger.holds import Hold, HoldState
from ledger.legs import Direction, Leg
from ledger.money import Money
from ledger.postings import Posting, PostingResult, TransactionKind
from ledger.service import Deposit, Ledger
from ledger.transfers import Transfer, TransferPosting, TransferStatus

__all__ = [
    "Account",
    "AccountKind",
    "AccountStatus",
    "Balance",
    "Deposit",
    "Direction",
    "FixedSide",
    "FxConversion",
    "FxQuote",
    "Hold",
    "HoldState",
    "Ledger",
    "Leg",
    "Money",
    "Page",
    "Posting",
    "PostingResult",
    "StatementEntry",
    "TransactionKind",
    "Transfer",
    "TransferPosting",
    "TransferStatus",
    "TrialBalanceLine",
    "convert",
    "fx_legs",
    "make_engine",
]
