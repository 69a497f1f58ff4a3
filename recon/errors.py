"""Typed errors of reconciliation, reversals and statements.

Each carries a stable `code` (the problem document's `code` in the API) and the values a
caller needs to explain the refusal without parsing the message.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID


class ReconError(Exception):
    code: ClassVar[str] = "recon_error"

    def extra(self) -> dict[str, Any]:
        """Members the problem document carries besides `code` and `detail`."""
        return {}


class RunNotFound(ReconError):
    code = "reconciliation_run_not_found"


class ReversalNotFound(ReconError):
    code = "reversal_not_found"


class NotReversible(ReconError):
    """The transfer is not posted, or a reversal of it is already requested or approved."""

    code = "not_reversible"

    def __init__(self, transfer_id: UUID, why: str, *, reversal_id: UUID | None = None) -> None:
        super().__init__(f"transfer {transfer_id} cannot be reversed: {why}")
        self.transfer_id = transfer_id
        self.reversal_id = reversal_id

    def extra(self) -> dict[str, Any]:
        return {} if self.reversal_id is None else {"reversal_id": str(self.reversal_id)}


class FourEyesRequired(ReconError):
    """The staff member deciding a reversal is the one who requested it."""

    code = "four_eyes_required"


class ReversalNotPending(ReconError):
    code = "reversal_not_pending"

    def __init__(self, reversal_id: UUID, status: str) -> None:
        super().__init__(f"reversal {reversal_id} is {status}, not pending_approval")
        self.status = status

    def extra(self) -> dict[str, Any]:
        return {"reversal_status": self.status}


class ReversalWouldOverdraw(ReconError):
    """Taking the money back would take the payee's available balance below zero."""

    code = "reversal_would_overdraw"

    def __init__(self, account_id: UUID, currency: str, available_minor: int, required_minor: int) -> None:
        super().__init__(
            f"account {account_id} has {available_minor} {currency} (minor units) available; "
            f"the reversal takes back {required_minor}. Approve with force to cover the shortfall from settlement."
        )
        self.account_id = account_id
        self.currency = currency
        self.available_minor = available_minor
        self.required_minor = required_minor

    def extra(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "currency": self.currency,
            "available_minor": self.available_minor,
            "required_minor": self.required_minor,
        }


class InvalidStatement(ReconError):
    """The statement file cannot be read; `line` is the 1-based line of the file (header = 1)."""

    code = "invalid_statement"

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message

    def extra(self) -> dict[str, Any]:
        return {"line": self.line}


class NotSettlementAccount(ReconError):
    """Statements reconcile a house settlement account (the mirror of a bank account)."""

    code = "not_a_settlement_account"


class StatementNotFound(ReconError):
    code = "statement_not_found"
