"""Accounts: customer accounts and the house accounts of each currency.

Functions take an open psycopg connection and run inside the caller's transaction; the
`Ledger` facade decides the transaction boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn
from ledger.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotFound,
    DuplicatePosting,
    IllegalTransition,
    VersionConflict,
)
from ledger.ids import house_account_id
from ledger.money import validate_currency
from ledger.outbox import insert_event, make_event
from ledger.states import AccountKind as AccountKind  # re-exported: the enum's old home
from ledger.states import AccountStatus as AccountStatus

HOUSE_KINDS: Final = (AccountKind.SETTLEMENT, AccountKind.FX_LIQUIDITY, AccountKind.FX_REVENUE)


@dataclass(frozen=True, slots=True)
class Account:
    id: UUID
    kind: AccountKind
    customer_id: UUID | None
    currency: str
    label: str | None
    status: AccountStatus
    allow_overdraft: bool
    version: int
    created_at: datetime
    updated_at: datetime
    # LF + check digits + 16 digits (migration 0013): what people read and type.
    account_number: str

    @property
    def is_house(self) -> bool:
        return self.kind is not AccountKind.CUSTOMER

    def as_event_data(self) -> dict[str, Any]:
        return {
            "account_id": self.id,
            "customer_id": self.customer_id,
            "kind": self.kind,
            "currency": self.currency,
            "label": self.label,
            "status": self.status,
            "version": self.version,
            "created_at": self.created_at,
        }


COLUMNS: Final = (
    "id, kind, customer_id, currency, label, status, allow_overdraft, version, created_at, updated_at, account_number"
)


def from_row(row: Sequence[Any]) -> Account:
    return Account(
        id=row[0],
        kind=AccountKind(row[1]),
        customer_id=row[2],
        currency=row[3],
        label=row[4],
        status=AccountStatus(row[5]),
        allow_overdraft=row[6],
        version=row[7],
        created_at=row[8],
        updated_at=row[9],
        account_number=row[10],
    )


def check_active(account: Account) -> None:
    """Raises: AccountFrozen, AccountClosed (an account that takes no postings)."""
    if account.status is AccountStatus.FROZEN:
        raise AccountFrozen(account.id, account.status.value)
    if account.status is AccountStatus.CLOSED:
        raise AccountClosed(account.id, account.status.value)


def get_account(conn: Conn, account_id: UUID, *, for_update: bool = False) -> Account:
    """Raises: AccountNotFound."""
    # NO KEY UPDATE: enough to serialise status changes, and it does not conflict with the
    # KEY SHARE locks that foreign-key checks of concurrent postings take on this row.
    lock = " FOR NO KEY UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {COLUMNS} FROM accounts WHERE id = %s{lock}", (account_id,)).fetchone()
    if row is None:
        raise AccountNotFound(account_id)
    return from_row(row)


def get_accounts(conn: Conn, account_ids: Sequence[UUID]) -> dict[UUID, Account]:
    """The accounts that exist among `account_ids` (missing ones are simply absent)."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM accounts WHERE id = ANY(%s)", (list(account_ids),)).fetchall()
    return {row[0]: from_row(row) for row in rows}


def find_by_number(conn: Conn, account_number: str) -> Account:
    """The customer account with this (normalized, checked) number.

    Raises: AccountNotFound (also for a house account: they take no transfers).
    """
    row = conn.execute(
        f"SELECT {COLUMNS} FROM accounts WHERE account_number = %s AND kind = 'customer'", (account_number,)
    ).fetchone()
    if row is None:
        raise AccountNotFound(account_number)
    return from_row(row)


def list_customer_accounts(conn: Conn, customer_id: UUID) -> list[Account]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM accounts WHERE customer_id = %s ORDER BY created_at, id", (customer_id,)
    ).fetchall()
    return [from_row(r) for r in rows]


def open_account(conn: Conn, *, account_id: UUID, customer_id: UUID, currency: str, label: str | None) -> Account:
    """Open a customer account with its projection row and `account.opened` event.

    Idempotent by account id: opening it again with the same owner and currency returns
    the existing account.

    Raises:
        UnsupportedCurrency: unknown currency.
        DuplicatePosting: the id is taken by an account of another owner or currency.
    """
    validate_currency(currency)
    row = conn.execute(
        f"INSERT INTO accounts (id, kind, customer_id, currency, label) VALUES (%s, 'customer', %s, %s, %s) "
        f"ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}",
        (account_id, customer_id, currency, label),
    ).fetchone()
    if row is None:
        existing = get_account(conn, account_id)
        if existing.customer_id != customer_id or existing.currency != currency:
            raise DuplicatePosting(account_id, f"account id {account_id} is already used by another account")
        return existing
    account = from_row(row)
    insert_event(
        conn,
        make_event(
            "account.opened",
            business_id=account.id,
            key=account.id,
            data=account.as_event_data(),
            time=account.created_at,
        ),
    )
    return account


def ensure_house_accounts(conn: Conn, currencies: Iterable[str]) -> list[Account]:
    """Create the settlement, fx_liquidity and fx_revenue accounts of each currency if
    missing (idempotent; ids are derived, see ledger.ids.house_account_id). House accounts
    may go below zero: they are the bank's side of every posting.

    Raises:
        UnsupportedCurrency: unknown currency.
    """
    wanted = sorted({validate_currency(c) for c in currencies})
    ids: list[UUID] = []
    for currency in wanted:
        for kind in HOUSE_KINDS:
            account_id = house_account_id(kind, currency)
            ids.append(account_id)
            conn.execute(
                "INSERT INTO accounts (id, kind, currency, label, allow_overdraft) VALUES (%s, %s, %s, %s, true) "
                "ON CONFLICT DO NOTHING",
                (account_id, kind.value, currency, f"{kind.value}:{currency}"),
            )
    found = get_accounts(conn, ids)
    return [found[i] for i in ids]


def set_account_status(conn: Conn, account_id: UUID, status: AccountStatus, expected_version: int) -> Account:
    """Compare-and-set the status of a customer account, with an `account.status_changed`
    event. Closing needs a zero ledger balance and no open hold; `closed` is final.

    Raises:
        AccountNotFound: no such account.
        VersionConflict: the account's version is not `expected_version`.
        IllegalTransition: a house account, a closed account, or closing a non-empty one.
    """
    status = AccountStatus(status)
    current = get_account(conn, account_id, for_update=True)
    if current.version != expected_version:
        raise VersionConflict("account", account_id, expected_version, current.version)
    if current.is_house or current.status is AccountStatus.CLOSED:
        raise IllegalTransition(account_id, current.status.value, status.value)
    if current.status is status:
        return current
    if status is AccountStatus.CLOSED:
        # The projection row lock makes the emptiness check and the close one atomic step
        # with respect to postings (they take this lock too).
        row = conn.execute(
            "SELECT ledger_minor, held_minor FROM account_balances WHERE account_id = %s FOR UPDATE", (account_id,)
        ).fetchone()
        if row is None or row[0] != 0 or row[1] != 0:
            raise IllegalTransition(account_id, current.status.value, "closed (balance or holds not zero)")
    row = conn.execute(
        f"UPDATE accounts SET status = %s, version = version + 1, updated_at = now() "
        f"WHERE id = %s AND version = %s RETURNING {COLUMNS}",
        (status.value, account_id, expected_version),
    ).fetchone()
    if row is None:  # cannot happen under the row lock above; kept as an assertion
        raise VersionConflict("account", account_id, expected_version, None)
    account = from_row(row)
    data = account.as_event_data() | {"previous_status": current.status}
    insert_event(
        conn,
        make_event(
            "account.status_changed",
            business_id=account.id,
            key=account.id,
            data=data,
            discriminators=(account.version,),
            time=account.updated_at,
        ),
    )
    return account
