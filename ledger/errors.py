"""Typed domain errors of the ledger.

Every error carries a stable `code` (the machine-readable string the API puts in its RFC 9457
problem documents; where docs/api.md names a code, the same string is used here) and the ids
that let a caller explain the failure without parsing the message.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    code: ClassVar[str] = "ledger_error"


class InvalidAmount(LedgerError, ValueError):
    """An amount is not a positive integer of minor units within range (or not an int at all)."""

    code = "invalid_amount"


class UnsupportedCurrency(LedgerError, ValueError):
    """The currency is not an ISO 4217 code this ledger keeps."""

    code = "unsupported_currency"

    def __init__(self, currency: object) -> None:
        super().__init__(f"unsupported currency: {currency!r}")
        self.currency = currency


class CurrencyMismatch(LedgerError):
    """Two amounts, or an amount and an account, are in different currencies."""

    code = "currency_mismatch"

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class InvalidRate(LedgerError, ValueError):
    """An FX rate or spread is not a finite positive decimal (or spread out of 0..9999 bps)."""

    code = "invalid_rate"


class FxQuoteRequired(LedgerError):
    """A cross-currency transfer needs a quote to fix the other side's amount."""

    code = "quote_required"


class SameAccount(LedgerError):
    """Source and destination of a transfer are the same account."""

    code = "same_account"


class AccountNotFound(LedgerError):
    """No such account (or, for a customer, not one of theirs: the API answers 404 either way)."""

    code = "account_not_found"

    def __init__(self, account_id: UUID | str | None) -> None:
        super().__init__(f"account not found: {account_id}")
        self.account_id = account_id


class AccountNotActive(LedgerError):
    """The account is frozen or closed: nothing may be posted to it."""

    code = "account_not_active"

    def __init__(self, account_id: UUID | str | None, status: str) -> None:
        super().__init__(f"account {account_id} is {status}")
        self.account_id = account_id
        self.status = status


class AccountFrozen(AccountNotActive):
    code = "account_frozen"


class AccountClosed(AccountNotActive):
    code = "account_closed"


class InsufficientFunds(LedgerError):
    """The posting or hold would take a customer account's available balance below zero."""

    code = "insufficient_funds"

    def __init__(self, account_id: UUID | str | None) -> None:
        super().__init__(f"insufficient funds in account {account_id}")
        self.account_id = account_id


class UnbalancedTransaction(LedgerError):
    """The legs of a transaction do not sum to zero in every currency (or are malformed)."""

    code = "unbalanced_transaction"


class DuplicatePosting(LedgerError):
    """An idempotency key (deposit id, transfer id) was reused for a different request."""

    code = "idempotency_key_reused"

    def __init__(self, key: UUID | str, message: str | None = None) -> None:
        super().__init__(message or f"idempotency key {key} was already used for a different request")
        self.key = key


class HoldNotFound(LedgerError):
    code = "hold_not_found"

    def __init__(self, hold_id: UUID | str | None) -> None:
        super().__init__(f"hold not found: {hold_id}")
        self.hold_id = hold_id


class HoldNotPending(LedgerError):
    """The hold already left `pending` (posted, voided or expired) in a way that refuses this."""

    code = "hold_not_pending"

    def __init__(self, hold_id: UUID | str | None, state: str) -> None:
        super().__init__(f"hold {hold_id} is {state}, not pending")
        self.hold_id = hold_id
        self.state = state


class VersionConflict(LedgerError):
    """A compare-and-set lost: the row's version moved on since the caller read it."""

    code = "version_conflict"

    def __init__(self, entity: str, entity_id: UUID | str, expected: int, actual: int | None) -> None:
        super().__init__(f"{entity} {entity_id}: expected version {expected}, found {actual}")
        self.entity = entity
        self.entity_id = entity_id
        self.expected = expected
        self.actual = actual


class TransferNotFound(LedgerError):
    code = "transfer_not_found"

    def __init__(self, transfer_id: UUID | str) -> None:
        super().__init__(f"transfer not found: {transfer_id}")
        self.transfer_id = transfer_id


class IllegalTransition(LedgerError):
    """The transfer (or account) is not in a status from which this change is allowed."""

    code = "illegal_transition"

    def __init__(self, entity_id: UUID | str, current: str, wanted: str) -> None:
        super().__init__(f"{entity_id}: cannot go from {current} to {wanted}")
        self.entity_id = entity_id
        self.current = current
        self.wanted = wanted


class InvalidCursor(LedgerError, ValueError):
    code = "invalid_cursor"


class LedgerIntegrityError(LedgerError):
    """The database refused a write for a reason the ledger did not expect (a bug, not input)."""

    code = "ledger_integrity_error"
