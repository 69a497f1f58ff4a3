"""Lookups several routes share: a customer's own account or payee, an account by its typed
number. Each refuses with the same problem whichever route asks (a foreign id reads as absent,
and is recorded), so they live here rather than in one route that the others import."""

from __future__ import annotations

from uuid import UUID

from api.deps import CustomerPrincipal, record_foreign_access
from api.errors import refusal
from api.runtime import Runtime
from ledger import account_numbers, payees
from ledger.accounts import Account, AccountKind
from ledger.db import Conn
from ledger.errors import AccountNotFound
from ledger.service import Ledger


def owned_account(ledger: Ledger, customer: CustomerPrincipal, account_id: UUID) -> Account:
    """The account if it is the customer's; 404 account_not_found otherwise (no existence leak).

    Raises:
        Problem: 404 account_not_found.
    """
    try:
        account = ledger.get_account(account_id)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No such account.") from err
    if account.kind is not AccountKind.CUSTOMER or account.customer_id != customer.id:
        record_foreign_access(ledger.engine, customer, "account", account_id)
        raise refusal("account_not_found", "No such account.")
    return account


def account_by_number(ledger: Ledger, text_typed: str) -> Account:
    """A customer account by the number a person typed (spaces ignored, check digits first).

    Raises:
        Problem: 422 invalid_account_number (no lookup made), 404 account_not_found.
    """
    try:
        number = account_numbers.parse(text_typed)
    except account_numbers.InvalidAccountNumber as err:
        raise refusal("invalid_account_number", str(err)) from err
    try:
        return ledger.find_account_by_number(number)
    except AccountNotFound as err:
        raise refusal("account_not_found", "No account has this number.") from err


def owned_payee(
    conn: Conn, runtime: Runtime, customer: CustomerPrincipal, payee_id: UUID, *, lock: str = ""
) -> payees.Payee:
    """Raises: Problem 404 payee_not_found (also another customer's, or a deleted one)."""
    try:
        payee = payees.get(conn, payee_id, lock=lock)
    except payees.PayeeNotFound as err:
        raise refusal("payee_not_found", "No such payee.") from err
    if payee.customer_id != customer.id:
        record_foreign_access(runtime.engine, customer, "payee", payee_id)
        raise refusal("payee_not_found", "No such payee.")
    if payee.status is payees.PayeeStatus.DELETED:
        raise refusal("payee_not_found", "No such payee.")
    return payee
