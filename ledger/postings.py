"""Postings: balanced legs written as one ledger transaction, keyed by a business id.

Python validates and builds the legs; the database function `ledger_post` writes them with
the projection update, the overdraft guard, the hold settlement, the outbox rows and the
idempotency key in one statement (one round trip, one transaction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn, call_function
from ledger.errors import DuplicatePosting
from ledger.legs import Direction, Leg, check_balanced
from ledger.outbox import OutboxEvent, event_param
from ledger.states import TransactionKind as TransactionKind  # re-exported: the enum's old home


@dataclass(frozen=True, slots=True)
class Posting:
    """A request to write one balanced ledger transaction.

    Raises (on construction):
        UnbalancedTransaction: fewer than two legs, or legs that do not net to zero per currency.
    """

    idempotency_key: UUID
    kind: TransactionKind
    legs: tuple[Leg, ...]
    description: str | None = None
    external_reference: str | None = None
    transfer_id: UUID | None = None
    # a pending hold on one of the debited accounts, settled by this posting
    hold_id: UUID | None = None
    event: OutboxEvent | None = None

    def __post_init__(self) -> None:
        check_balanced(self.legs)

    def request_hash(self) -> str:
        """Fingerprint of what was asked (legs, kind, reference), compared on key reuse."""
        canon = "|".join(
            [self.kind.value, self.external_reference or "", str(self.hold_id or "")]
            + [f"{leg.account_id}:{leg.direction.value}:{leg.amount_minor}:{leg.currency}" for leg in self.legs]
        )
        return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PostingResult:
    transaction_id: UUID
    posted_at: datetime
    replayed: bool  # True: this key was posted before; nothing was written now


def leg_arrays(legs: Sequence[Leg]) -> tuple[str, str, str]:
    """Legs as the parallel arrays the SQL functions take (signed: credit > 0, debit < 0), as
    array literals to cast with ::uuid[], ::text[], ::bigint[]. UUIDs, ISO codes and ints need
    no quoting, and a literal costs the driver far less than adapting Python lists."""
    return (
        "{" + ",".join(str(leg.account_id) for leg in legs) + "}",
        "{" + ",".join(leg.currency for leg in legs) + "}",
        "{" + ",".join(str(leg.signed_minor) for leg in legs) + "}",
    )


# The legs go as array literals (leg_arrays), the event as JSON text.
_POST_CASTS: Final = {"p_account_ids": "uuid[]", "p_currencies": "text[]", "p_amounts": "bigint[]", "p_event": "jsonb"}


def post(conn: Conn, posting: Posting, transaction_id: UUID) -> PostingResult:
    """Write `posting` as transaction `transaction_id`, or return the transaction already
    written under its idempotency key (replayed=True, nothing written).

    Raises:
        DuplicatePosting: the key was used before for a different request.
        (from the database, translated by the caller) InsufficientFunds, AccountFrozen,
        AccountClosed, AccountNotFound, CurrencyMismatch, UnbalancedTransaction,
        HoldNotFound, HoldNotPending.
    """
    account_ids, currencies, amounts = leg_arrays(posting.legs)
    wanted_hash = posting.request_hash()
    row = call_function(
        conn,
        "ledger_post",
        "transaction_id, posted_at, replayed, request_hash",
        _POST_CASTS,
        p_transaction_id=transaction_id,
        p_idempotency_key=posting.idempotency_key,
        p_kind=posting.kind.value,
        p_transfer_id=posting.transfer_id,
        p_description=posting.description,
        p_external_reference=posting.external_reference,
        p_request_hash=wanted_hash,
        p_account_ids=account_ids,
        p_currencies=currencies,
        p_amounts=amounts,
        p_hold_id=posting.hold_id,
        p_event=event_param(posting.event),
    ).fetchone()
    assert row is not None
    if row[2] and row[3] != wanted_hash:
        raise DuplicatePosting(posting.idempotency_key)
    return PostingResult(transaction_id=row[0], posted_at=row[1], replayed=row[2])


@dataclass(frozen=True, slots=True)
class PostedLeg:
    """A leg as written: an entry with its running balance."""

    entry_id: UUID
    leg_no: int
    account_id: UUID
    direction: Direction
    amount_minor: int
    currency: str
    balance_after_minor: int
    posted_at: datetime

    def as_leg(self) -> Leg:
        return Leg(self.account_id, self.direction, self.amount_minor, self.currency)


def transaction_legs(conn: Conn, transaction_id: UUID) -> list[PostedLeg]:
    """The entries of one transaction, in leg order."""
    rows: list[Any] = conn.execute(
        "SELECT id, leg_no, account_id, direction, amount_minor, currency, balance_after_minor, posted_at "
        "FROM entries WHERE transaction_id = %s ORDER BY leg_no",
        (transaction_id,),
    ).fetchall()
    return [
        PostedLeg(
            entry_id=r[0],
            leg_no=r[1],
            account_id=r[2],
            direction=Direction(r[3]),
            amount_minor=r[4],
            currency=r[5],
            balance_after_minor=r[6],
            posted_at=r[7],
        )
        for r in rows
    ]
