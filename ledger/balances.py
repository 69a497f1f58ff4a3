"""Balances, point-in-time balances, statements and the checks that prove them.

- Current balance: the projection row (ledger_minor, held_minor), kept in step with the
  entries by the posting functions in the same transaction.
- As-of balance: from the entries (each carries the account's running balance, and entries
  of an account are strictly ordered by posted_at) plus the holds open at that instant.
- Statement: entries newest first, keyset-paginated on (posted_at, id).
- trial_balance / projection_mismatches: what reconciliation runs to show that every
  currency nets to zero and every projection equals the sum of its entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from ledger import cursors
from ledger.db import Conn
from ledger.errors import AccountNotFound
from ledger.legs import Direction

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Balance:
    """ledger = posted credits - posted debits; held = open holds; available = ledger - held."""

    account_id: UUID
    currency: str
    ledger_minor: int
    held_minor: int
    available_minor: int
    as_of: datetime
    # projection version (None for a balance computed as of a past instant)
    version: int | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StatementEntry:
    id: UUID
    transaction_id: UUID
    transfer_id: UUID | None
    direction: Direction
    amount_minor: int
    currency: str
    balance_after_minor: int
    posted_at: datetime
    description: str | None


def current_balance(conn: Conn, account_id: UUID) -> Balance:
    """Raises: AccountNotFound."""
    row = conn.execute(
        "SELECT currency, ledger_minor, held_minor, version, now() FROM account_balances WHERE account_id = %s",
        (account_id,),
    ).fetchone()
    if row is None:
        raise AccountNotFound(account_id)
    currency, ledger_minor, held_minor, version, now = row
    return Balance(account_id, currency, ledger_minor, held_minor, ledger_minor - held_minor, now, version)


def balance_as_of(conn: Conn, account_id: UUID, as_of: datetime) -> Balance:
    """The balance at instant `as_of`, computed from entries and holds.

    Raises: AccountNotFound.
    """
    row = conn.execute(
        """
        SELECT b.currency,
               coalesce((SELECT e.balance_after_minor FROM entries e
                          WHERE e.account_id = b.account_id AND e.posted_at <= %(at)s
                          ORDER BY e.posted_at DESC LIMIT 1), 0),
               coalesce((SELECT sum(h.amount_minor) FROM holds h
                          WHERE h.account_id = b.account_id AND h.created_at <= %(at)s
                            AND (h.resolved_at IS NULL OR h.resolved_at > %(at)s)), 0)::bigint
          FROM account_balances b WHERE b.account_id = %(id)s
        """,
        {"id": account_id, "at": as_of},
    ).fetchone()
    if row is None:
        raise AccountNotFound(account_id)
    currency, ledger_minor, held_minor = row
    return Balance(account_id, currency, ledger_minor, held_minor, ledger_minor - held_minor, as_of, None)


def statement(conn: Conn, account_id: UUID, limit: int = 50, cursor: str | None = None) -> Page[StatementEntry]:
    """Entries of the account, newest first, each with its running balance.

    Raises:
        AccountNotFound: no such account.
        InvalidCursor: a cursor this function did not produce.
    """
    limit = max(1, min(limit, 200))
    exists = conn.execute("SELECT 1 FROM account_balances WHERE account_id = %s", (account_id,)).fetchone()
    if exists is None:
        raise AccountNotFound(account_id)
    params: dict[str, object] = {"account": account_id, "n": limit + 1}
    after = ""
    if cursor is not None:
        params["at"], params["eid"] = cursors.decode(cursor)
        # Entries of one account have distinct posted_at (unique index), so the bound on
        # posted_at alone is exact; the id term only keeps the (posted_at, id) contract.
        after = "AND e.posted_at <= %(at)s AND (e.posted_at < %(at)s OR e.id < %(eid)s)"
    rows = conn.execute(
        f"""
        SELECT e.id, e.transaction_id, t.transfer_id, e.direction, e.amount_minor, e.currency,
               e.balance_after_minor, e.posted_at, t.description
          FROM entries e JOIN ledger_transactions t ON t.id = e.transaction_id
         WHERE e.account_id = %(account)s {after}
         ORDER BY e.posted_at DESC, e.id DESC
         LIMIT %(n)s
        """,
        params,
    ).fetchall()
    items = [
        StatementEntry(
            id=r[0],
            transaction_id=r[1],
            transfer_id=r[2],
            direction=Direction(r[3]),
            amount_minor=r[4],
            currency=r[5],
            balance_after_minor=r[6],
            posted_at=r[7],
            description=r[8],
        )
        for r in rows[:limit]
    ]
    next_cursor = cursors.encode(items[-1].posted_at, items[-1].id) if len(rows) > limit else None
    return Page(items, next_cursor)


@dataclass(frozen=True, slots=True)
class TrialBalanceLine:
    """Per currency: debits and credits of all entries (equal when the books balance), and
    the sum of every account's projected ledger balance (zero when the books balance)."""

    currency: str
    debits_minor: int
    credits_minor: int
    projection_net_minor: int

    @property
    def balanced(self) -> bool:
        return self.debits_minor == self.credits_minor and self.projection_net_minor == 0


def trial_balance(conn: Conn) -> list[TrialBalanceLine]:
    rows = conn.execute(
        """
        WITH e AS (
            SELECT currency,
                   sum(amount_minor) FILTER (WHERE direction = 'debit') AS debits,
                   sum(amount_minor) FILTER (WHERE direction = 'credit') AS credits
              FROM entries GROUP BY currency
        ), p AS (
            SELECT currency, sum(ledger_minor) AS net FROM account_balances GROUP BY currency
        )
        SELECT coalesce(e.currency, p.currency), coalesce(e.debits, 0), coalesce(e.credits, 0), coalesce(p.net, 0)
          FROM e FULL JOIN p ON p.currency = e.currency
         ORDER BY 1
        """
    ).fetchall()
    return [TrialBalanceLine(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


@dataclass(frozen=True, slots=True)
class ProjectionMismatch:
    account_id: UUID
    projection_ledger_minor: int
    entries_ledger_minor: int
    projection_held_minor: int
    pending_holds_minor: int


def projection_mismatches(conn: Conn) -> list[ProjectionMismatch]:
    """Accounts whose projection differs from their entries or their pending holds (the
    answer is the empty list unless something bypassed the posting functions)."""
    rows = conn.execute(
        """
        SELECT b.account_id, b.ledger_minor, coalesce(e.net, 0), b.held_minor, coalesce(h.held, 0)
          FROM account_balances b
          LEFT JOIN (SELECT account_id,
                            sum(CASE direction WHEN 'credit' THEN amount_minor ELSE -amount_minor END) AS net
                       FROM entries GROUP BY account_id) e ON e.account_id = b.account_id
          LEFT JOIN (SELECT account_id, sum(amount_minor) AS held
                       FROM holds WHERE state = 'pending' GROUP BY account_id) h ON h.account_id = b.account_id
         WHERE b.ledger_minor <> coalesce(e.net, 0) OR b.held_minor <> coalesce(h.held, 0)
        """
    ).fetchall()
    return [ProjectionMismatch(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
