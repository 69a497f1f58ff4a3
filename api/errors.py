"""Ledger domain errors as problem documents: one table from error code to HTTP status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from api.contract import translator
from api.problems import Problem
from fx.rates import UnsupportedPair
from ledger.errors import LedgerError

_STATUS: Final = {
    "account_not_found": 404,
    "transfer_not_found": 404,
    "payee_not_found": 404,
    "standing_order_not_found": 404,
    "invalid_state": 409,
    "hold_not_found": 404,
    "insufficient_funds": 422,
    "same_account": 422,
    "invalid_account_number": 422,
    "invalid_amount": 422,
    "currency_mismatch": 422,
    "account_frozen": 422,
    "account_closed": 422,
    "account_not_active": 422,
    "unsupported_currency": 422,
    "invalid_rate": 422,
    "quote_required": 422,
    "quote_unavailable": 422,
    "unsupported_pair": 422,
    "invalid_cursor": 422,
    "idempotency_key_reused": 422,
    "version_conflict": 412,
    "illegal_transition": 409,
    "hold_not_pending": 409,
}

_TITLES: Final = {404: "Not found", 409: "Conflict", 412: "Precondition failed", 422: "Request refused"}


def status_for(code: str) -> int:
    """HTTP status of a business refusal code (an unknown code is a refusal: 422)."""
    return _STATUS.get(code, 422)


def refusal(code: str, detail: str | None = None) -> Problem:
    status = status_for(code)
    return Problem(status, code, _TITLES.get(status, "Request refused"), detail or code.replace("_", " "))


@translator
def from_ledger(err: LedgerError) -> Problem:
    """The problem for a ledger error; messages name ids only, never SQL."""
    if err.code not in _STATUS:
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
