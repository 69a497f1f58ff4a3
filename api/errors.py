"""Ledger domain errors as problem documents; their HTTP status is the contract's (api.contract.CODES)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from api.contract import CODES, translator
from api.problems import Problem
from fx.rates import UnsupportedPair
from ledger.errors import LedgerError

# Ledger error codes a client can act on (anything else is our bug: a 500). Their HTTP status
# is the contract's, api.contract.CODES: the one table of code -> status.
_REFUSALS: Final = frozenset(
    {
        "account_not_found",
        "transfer_not_found",
        "payee_not_found",
        "standing_order_not_found",
        "invalid_state",
        "hold_not_found",
        "insufficient_funds",
        "same_account",
        "invalid_account_number",
        "invalid_amount",
        "currency_mismatch",
        "account_frozen",
        "account_closed",
        "account_not_active",
        "unsupported_currency",
        "invalid_rate",
        "quote_required",
        "quote_unavailable",
        "unsupported_pair",
        "invalid_cursor",
        "idempotency_key_reused",
        "version_conflict",
        "illegal_transition",
        "hold_not_pending",
    }
)
# Ledger codes no route declares (docs/api.md does not list them: the holds and quotes behind
# them are internal to the transfer workflow), with the status they would have.
_UNDECLARED: Final = {"hold_not_found": 404, "hold_not_pending": 409, "quote_required": 422, "quote_unavailable": 422}

_TITLES: Final = {
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed",
    422: "Request refused",
}


def title_for(status: int) -> str:
    return _TITLES.get(status, "Request refused")


def status_for(code: str) -> int:
    """HTTP status of a business refusal code (an unknown code is a refusal: 422)."""
    declared = CODES.get(code)
    return declared.status if declared is not None else _UNDECLARED.get(code, 422)


def refusal(code: str, detail: str | None = None) -> Problem:
    status = status_for(code)
    return Problem(status, code, title_for(status), detail or code.replace("_", " "))


@translator
def from_ledger(err: LedgerError) -> Problem:
    """The problem for a ledger error; messages name ids only, never SQL."""
    if err.code not in _REFUSALS:
        # Not a refusal the client can act on (an integrity error is our bug): a 500 with no detail.
        return Problem(500, "internal_error", "Internal server error", "Something went wrong on our side.")
    return refusal(err.code, str(err))


@translator
@contextmanager
def ledger_errors() -> Iterator[None]:
    """Turn ledger (and FX) refusals raised in the block into problems."""
    try:
        yield
    except LedgerError as err:
        raise from_ledger(err) from err
    except UnsupportedPair as err:
        raise refusal("unsupported_pair", str(err)) from err
