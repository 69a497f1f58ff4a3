"""Transfers: the record the API serves and the workflow moves through its statuses.

    pending_otp -> processing -> posted -> reversed
    pending_otp -> in_review -> processing | rejected
    processing -> in_review (a risk review after the code)
    pending_otp | in_review -> failed | cancelled | expired;  processing -> failed

Every change is a compare-and-set on (status[, version]) in the database. Changes that move
money go through one SQL function each, so the status, the hold, the legs and the event
commit together: create (hold placed), void (hold released), post (hold becomes legs),
reverse (compensating legs).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from ledger import cursors
from ledger.accounts import COLUMNS as ACCOUNT_COLUMNS
from ledger.accounts import AccountKind, check_active
from ledger.accounts import from_row as account_from_row
from ledger.balances import Page
from ledger.db import TRANSFER_CONFLICT, Conn, call_function, retryable_statement, translate_error
from ledger.errors import (
    AccountNotFound,
    CurrencyMismatch,
    DuplicatePosting,
    FxQuoteRequired,
    IllegalTransition,
    InsufficientFunds,
    SameAccount,
    TransferNotFound,
    VersionConflict,
)
from ledger.fx import FixedSide, FxConversion, FxQuote, convert, fx_legs
from ledger.ids import event_id, uuid7
from ledger.legs import Leg
from ledger.money import Money
from ledger.postings import PostedLeg, TransactionKind, leg_arrays, transaction_legs
from ledger.states import TransferStatus as TransferStatus  # re-exported: the enum's old home

S = TransferStatus
# The status graph of docs/api.md: what each status may become.
TRANSITIONS: Final[dict[TransferStatus, frozenset[TransferStatus]]] = {
    S.PENDING_OTP: frozenset({S.PROCESSING, S.IN_REVIEW, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.IN_REVIEW: frozenset({S.PROCESSING, S.REJECTED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    # processing -> in_review: the risk verdict (review, or none in time) comes after the code
    # was taken, which already moved the transfer to processing.
    S.PROCESSING: frozenset({S.POSTED, S.FAILED, S.IN_REVIEW}),
    S.POSTED: frozenset({S.REVERSED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REJECTED: frozenset(),
    S.REVERSED: frozenset(),
}
# Reached with transition_transfer (no money moves); the others have their own function.
STATUS_ONLY: Final = frozenset({S.IN_REVIEW, S.PROCESSING})
# Reached with void_transfer (the hold is released).
VOID_STATUSES: Final = frozenset({S.FAILED, S.CANCELLED, S.EXPIRED, S.REJECTED})
TERMINAL: Final = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


def allowed_from(target: TransferStatus) -> list[str]:
    """The statuses `target` may be reached from."""
    return sorted(s.value for s, nexts in TRANSITIONS.items() if target in nexts)


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as stored: the fixed side (`amount_minor` in `currency`), what leaves the
    source and what arrives (equal without FX), the FX terms once quoted, its hold, its
    ledger transaction once posted (and the compensating one once reversed)."""

    id: UUID
    customer_id: UUID
    source_account_id: UUID
    destination_account_id: UUID
    amount_minor: int
    currency: str  # the fixed side: source or destination currency
    source_currency: str
    destination_currency: str
    source_amount_minor: int
    destination_amount_minor: int | None  # unknown until posted for an unquoted FX transfer
    status: TransferStatus
    failure_reason: str | None
    description: str | None
    fx_quote_id: str | None
    fx_rate: Decimal | None
    fx_spread_bps: int | None
    fx_spread_minor: int | None
    hold_id: UUID | None
    transaction_id: UUID | None
    reversal_transaction_id: UUID | None
    workflow_id: str
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def is_fx(self) -> bool:
        return self.source_currency != self.destination_currency

    @property
    def fixed_side(self) -> FixedSide:
        return FixedSide.SOURCE if self.currency == self.source_currency else FixedSide.DESTINATION


COLUMNS: Final = ", ".join(f.name for f in dataclasses.fields(Transfer))


def from_row(row: Sequence[Any]) -> Transfer:
    values = list(row)
    values[10] = TransferStatus(values[10])
    return Transfer(*values)


@dataclass(frozen=True, slots=True)
class TransferPosting:
    """Outcome of posting (or reversing) a transfer."""

    transfer: Transfer
    transaction_id: UUID
    posted_at: datetime
    legs: list[Leg]
    replayed: bool  # True: it was posted before; this call wrote nothing


def get_transfer(conn: Conn, transfer_id: UUID) -> Transfer:
    """Raises: TransferNotFound."""
    row = conn.execute(f"SELECT {COLUMNS} FROM transfers WHERE id = %s", (transfer_id,)).fetchone()
    if row is None:
        raise TransferNotFound(transfer_id)
    return from_row(row)


def _same_request(t: Transfer, customer_id: UUID, source: UUID, destination: UUID, amount: Money) -> bool:
    return (t.customer_id, t.source_account_id, t.destination_account_id, t.amount_minor, t.currency) == (
        customer_id,
        source,
        destination,
        amount.amount_minor,
        amount.currency,
    )


def create_transfer(
    conn: Conn,
    *,
    transfer_id: UUID,
    customer_id: UUID,
    source_account_id: UUID,
    destination_account_id: UUID,
    amount: Money,
    description: str | None,
    fx: FxQuote | None,
    hold_expires_at: datetime | None,
    workflow_id: str,
    precheck: HoldPrecheck | None = None,
) -> Transfer:
    """Create the transfer in `pending_otp` with its hold and `transfer.initiated` event
    (one database transaction). Idempotent by transfer id.

    `precheck(conn, customer_id, source_currency, source_amount_minor)` runs on `conn` just
    before the hold, for a new transfer only (a replay checks nothing again); with it, `conn`
    must be in a transaction, so that what the precheck read or locked commits with the hold
    (the risk limits use it: DESIGN invariant 11). Its errors propagate.

    Raises:
        SameAccount, AccountNotFound (also for a source the customer does not own),
        CurrencyMismatch, AccountFrozen, AccountClosed, FxQuoteRequired, InvalidAmount,
        DuplicatePosting (the id was used for another transfer), and from the database
        InsufficientFunds (and the account errors again, checked under the row lock).
    """
    if source_account_id == destination_account_id:
        raise SameAccount("source and destination are the same account")
    # One round trip: both accounts, and whether this transfer id exists already.
    rows = conn.execute(
        f"SELECT {ACCOUNT_COLUMNS}, EXISTS (SELECT 1 FROM transfers WHERE id = %s) FROM accounts WHERE id = ANY(%s)",
        (transfer_id, [source_account_id, destination_account_id]),
    ).fetchall()
    if rows and rows[0][-1]:
        return _replay_create(conn, transfer_id, customer_id, source_account_id, destination_account_id, amount)
    accounts = {row[0]: account_from_row(row) for row in rows}
    source = accounts.get(source_account_id)
    if source is None or source.kind is not AccountKind.CUSTOMER or source.customer_id != customer_id:
        raise AccountNotFound(source_account_id)
    destination = accounts.get(destination_account_id)
    if destination is None or destination.kind is not AccountKind.CUSTOMER:
        raise AccountNotFound(destination_account_id)
    if amount.currency not in (source.currency, destination.currency):
        raise CurrencyMismatch(
            f"transfer currency {amount.currency} is neither the source's ({source.currency}) "
            f"nor the destination's ({destination.currency})",
            expected=source.currency,
            actual=amount.currency,
        )
    check_active(source)
    check_active(destination)

    source_amount = destination_amount = amount.amount_minor
    fx_fields: tuple[str | None, Decimal | None, int | None, int | None] = (None, None, None, None)
    if source.currency != destination.currency:
        fixed = FixedSide.SOURCE if amount.currency == source.currency else FixedSide.DESTINATION
        if fx is None:
            if fixed is FixedSide.DESTINATION:
                raise FxQuoteRequired("a quote is needed to hold the source amount of a destination-fixed transfer")
            destination_amount_or_none: int | None = None
        else:
            conversion = _conversion(fx, source.currency, destination.currency, fixed, amount.amount_minor)
            source_amount = conversion.source_amount_minor
            destination_amount_or_none = conversion.destination_amount_minor
            fx_fields = (fx.quote_id, fx.rate, fx.spread_bps, conversion.spread_minor)
    else:
        destination_amount_or_none = destination_amount

    if precheck is not None:
        precheck(conn, customer_id, source.currency, source_amount)
    hold_id = uuid7()
    try:
        # Inside a transaction (a precheck's), the call gets a savepoint, so a twin's
        # duplicate id can be answered below on the same connection.
        savepoint: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if conn.autocommit else conn.transaction()
        )
        with savepoint:
            row = call_function(
                conn,
                "ledger_create_transfer",
                COLUMNS,
                p_transfer_id=transfer_id,
                p_customer_id=customer_id,
                p_source_account_id=source.id,
                p_destination_account_id=destination.id,
                p_amount_minor=amount.amount_minor,
                p_currency=amount.currency,
                p_source_currency=source.currency,
                p_destination_currency=destination.currency,
                p_source_amount_minor=source_amount,
                p_destination_amount_minor=destination_amount_or_none,
                p_fx_quote_id=fx_fields[0],
                p_fx_rate=fx_fields[1],
                p_fx_spread_bps=fx_fields[2],
                p_fx_spread_minor=fx_fields[3],
                p_description=description,
                p_hold_id=hold_id,
                p_hold_expires_at=hold_expires_at,
                p_workflow_id=workflow_id,
                p_event_id=event_id(transfer_id, "transfer.initiated"),
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "transfers_pkey":
            raise
        # a concurrent create with the same id won: same request -> its result
        return _replay_create(conn, transfer_id, customer_id, source_account_id, destination_account_id, amount)
    assert row is not None
    return from_row(row)


# (conn, customer_id, source_currency, source_amount_minor): see create_transfer.
HoldPrecheck = Callable[[Conn, UUID, str, int], None]


def _replay_create(
    conn: Conn, transfer_id: UUID, customer_id: UUID, source: UUID, destination: UUID, amount: Money
) -> Transfer:
    found = get_transfer(conn, transfer_id)
    if not _same_request(found, customer_id, source, destination, amount):
        raise DuplicatePosting(transfer_id)
    return found


def _conversion(
    fx: FxQuote, source_currency: str, destination_currency: str, fixed: FixedSide, amount_minor: int
) -> FxConversion:
    if (fx.source_currency, fx.destination_currency) != (source_currency, destination_currency):
        raise CurrencyMismatch(
            f"quote {fx.quote_id} is {fx.source_currency}->{fx.destination_currency}, "
            f"transfer is {source_currency}->{destination_currency}"
        )
    return convert(source_currency, destination_currency, fixed, amount_minor, fx.rate, fx.spread_bps)


def transition_transfer(
    conn: Conn, transfer_id: UUID, to_status: TransferStatus, expected_version: int | None = None
) -> Transfer:
    """Move a transfer to `in_review` or `processing`: compare-and-set on its status being a
    legal predecessor (and on `expected_version` when given). Repeating a transition that
    already happened returns the transfer unchanged (a retried activity is harmless).

    Raises:
        TransferNotFound: no such transfer.
        VersionConflict: expected_version given and stale.
        IllegalTransition: not a legal move from the current status, or a status that moves
            money (use create/void/post/reverse).
    """
    to_status = TransferStatus(to_status)
    if to_status not in STATUS_ONLY:
        raise IllegalTransition(transfer_id, "?", f"{to_status.value} (needs the ledger function for it)")
    version_check = "" if expected_version is None else " AND version = %(version)s"
    row = conn.execute(
        f"UPDATE transfers SET status = %(to)s, version = version + 1, updated_at = now() "
        f"WHERE id = %(id)s AND status = ANY(%(from)s){version_check} RETURNING {COLUMNS}",
        {"to": to_status.value, "id": transfer_id, "from": allowed_from(to_status), "version": expected_version},
    ).fetchone()
    if row is not None:
        return from_row(row)
    current = get_transfer(conn, transfer_id)
    if current.status is to_status and (expected_version is None or current.version == expected_version + 1):
        return current
    if expected_version is not None and current.version != expected_version:
        raise VersionConflict("transfer", transfer_id, expected_version, current.version)
    raise IllegalTransition(transfer_id, current.status.value, to_status.value)


def void_transfer(conn: Conn, transfer_id: UUID, final_status: TransferStatus, reason: str | None) -> Transfer:
    """End a transfer that will not post: release its hold, set the final status, write its
    `transfer.<status>` event, in one transaction. Idempotent: a second call with the same
    final status returns the transfer unchanged.

    Raises:
        TransferNotFound: no such transfer.
        IllegalTransition: final_status is not failed/cancelled/expired/rejected, or the
            transfer is elsewhere (posted, or ended with another status).
    """
    final_status = TransferStatus(final_status)
    if final_status not in VOID_STATUSES:
        raise IllegalTransition(transfer_id, "?", final_status.value)
    current = get_transfer(conn, transfer_id)
    if current.status is final_status:
        return current
    if final_status not in TRANSITIONS[current.status]:
        raise IllegalTransition(transfer_id, current.status.value, final_status.value)
    row = call_function(
        conn,
        "ledger_void_transfer",
        COLUMNS,
        p_transfer_id=transfer_id,
        p_status=final_status.value,
        p_from_statuses=allowed_from(final_status),
        p_reason=reason,
        p_event_id=event_id(transfer_id, f"transfer.{final_status.value}"),
    ).fetchone()
    if row is None:
        raise TransferNotFound(transfer_id)
    result = from_row(row)
    if result.status is not final_status:  # it moved on between our read and the update
        raise IllegalTransition(transfer_id, result.status.value, final_status.value)
    return result


def posting_plan(transfer: Transfer, fx: FxQuote | None) -> tuple[TransactionKind, list[Leg], FxConversion | None]:
    """The legs that post `transfer` (and its conversion when cross-currency).

    Raises:
        FxQuoteRequired: cross-currency without a quote.
        CurrencyMismatch: the quote is for another pair.
        InvalidAmount: too small to convert.
    """
    if not transfer.is_fx:
        amount = Money(transfer.amount_minor, transfer.currency)
        legs = [Leg.debit(transfer.source_account_id, amount), Leg.credit(transfer.destination_account_id, amount)]
        return TransactionKind.TRANSFER, legs, None
    if fx is None:
        raise FxQuoteRequired(f"transfer {transfer.id} is {transfer.source_currency}->{transfer.destination_currency}")
    conversion = _conversion(
        fx, transfer.source_currency, transfer.destination_currency, transfer.fixed_side, transfer.amount_minor
    )
    legs = fx_legs(conversion, transfer.source_account_id, transfer.destination_account_id)
    return TransactionKind.FX_TRANSFER, legs, conversion


def _same_currency_legs(transfer: Transfer) -> list[Leg]:
    amount = Money(transfer.amount_minor, transfer.currency)
    return [Leg.debit(transfer.source_account_id, amount), Leg.credit(transfer.destination_account_id, amount)]


def _translate_post_conflict(exc: psycopg.Error, transfer_id: UUID) -> None:
    """LF009 from the posting function: the transfer is not in a status that posts."""
    status = (exc.diag.message_detail or "") if exc.diag else ""
    if status and status != TransferStatus.PROCESSING.value:
        raise IllegalTransition(transfer_id, status, TransferStatus.POSTED.value) from exc


# The legs go to the SQL functions as array literals (see ledger.postings.leg_arrays).
_LEG_ARRAY_CASTS: Final = {"p_account_ids": "uuid[]", "p_currencies": "text[]", "p_amounts": "bigint[]"}
_FX_TERMS: Final = (
    "p_source_amount_minor",
    "p_destination_amount_minor",
    "p_fx_quote_id",
    "p_fx_rate",
    "p_fx_spread_bps",
    "p_fx_spread_minor",
)


def post_transfer(conn: Conn, transfer_id: UUID, fx: FxQuote | None, *, max_attempts: int = 5) -> TransferPosting:
    """Turn the transfer's hold into legs, set it `posted` and write `transfer.posted`, in ONE
    transaction. Idempotent by transfer id: a posted transfer returns its first transaction
    (replayed=True) and nothing is written.

    Same currency (fx None): ONE round trip; the function takes the legs from the row the
    creation validated (debit source, credit destination, amount) under its compare-and-set.
    Cross currency: the transfer is read first, Python computes the FX legs from the quote
    (ledger.fx), and the function posts them with a compare-and-set on the version read.

    Raises:
        TransferNotFound: no such transfer.
        IllegalTransition: the transfer is not `processing` (nor already posted).
        FxQuoteRequired: cross-currency without a quote.
        CurrencyMismatch, InvalidAmount: the quote does not fit (see posting_plan).
        VersionConflict: lost the compare-and-set max_attempts times in a row.
        (from the database, translated by the caller) InsufficientFunds (an FX source amount
        above the hold), AccountFrozen, AccountClosed, AccountNotFound (a missing house
        account), HoldNotPending (the hold was voided or expired), UnbalancedTransaction.
    """
    posted_event = event_id(transfer_id, "transfer.posted")
    if fx is None:
        transaction_id = uuid7()
        try:
            # The same-currency form: no version, legs or FX terms (the function takes the legs
            # from the row it locks).
            row = call_function(
                conn,
                "ledger_post_transfer",
                COLUMNS,
                _LEG_ARRAY_CASTS,
                p_transfer_id=transfer_id,
                p_transaction_id=transaction_id,
                p_event_id=posted_event,
                p_kind=TransactionKind.TRANSFER.value,
                p_expected_version=None,
                p_account_ids=None,
                p_currencies=None,
                p_amounts=None,
                p_source_amount_minor=None,
                p_destination_amount_minor=None,
                p_fx_quote_id=None,
                p_fx_rate=None,
                p_fx_spread_bps=None,
                p_fx_spread_minor=None,
            ).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == TRANSFER_CONFLICT:
                _translate_post_conflict(exc, transfer_id)
            raise
        assert row is not None
        transfer = from_row(row)
        if transfer.transaction_id != transaction_id:
            return _replayed_posting(conn, transfer)
        return TransferPosting(transfer, transaction_id, transfer.updated_at, _same_currency_legs(transfer), False)

    for _ in range(max_attempts):
        transfer = get_transfer(conn, transfer_id)
        if transfer.status in (TransferStatus.POSTED, TransferStatus.REVERSED):
            return _replayed_posting(conn, transfer)
        if transfer.status is not TransferStatus.PROCESSING:
            raise IllegalTransition(transfer_id, transfer.status.value, TransferStatus.POSTED.value)
        kind, legs, conversion = posting_plan(transfer, fx)
        transaction_id = uuid7()
        if conversion is None:  # a quote given for a same-currency transfer: not needed
            arrays: tuple[str | None, str | None, str | None] = (None, None, None)
            fx_terms: dict[str, object] = dict.fromkeys(_FX_TERMS)
        else:
            arrays = leg_arrays(legs)
            fx_terms = {
                "p_source_amount_minor": conversion.source_amount_minor,
                "p_destination_amount_minor": conversion.destination_amount_minor,
                "p_fx_quote_id": fx.quote_id,
                "p_fx_rate": conversion.rate,
                "p_fx_spread_bps": conversion.spread_bps,
                "p_fx_spread_minor": conversion.spread_minor,
            }
        try:
            with retryable_statement(conn):
                row = call_function(
                    conn,
                    "ledger_post_transfer",
                    COLUMNS,
                    _LEG_ARRAY_CASTS,
                    p_transfer_id=transfer_id,
                    p_transaction_id=transaction_id,
                    p_event_id=posted_event,
                    p_kind=kind.value,
                    p_expected_version=transfer.version,
                    p_account_ids=arrays[0],
                    p_currencies=arrays[1],
                    p_amounts=arrays[2],
                    **fx_terms,
                ).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == TRANSFER_CONFLICT:
                _translate_post_conflict(exc, transfer_id)
                continue  # still processing but the version moved: read again
            raise
        assert row is not None
        posted = from_row(row)
        if posted.transaction_id != transaction_id:
            return _replayed_posting(conn, posted)
        return TransferPosting(posted, transaction_id, posted.updated_at, legs, False)
    raise VersionConflict("transfer", transfer_id, -1, None)


def _replayed_posting(conn: Conn, transfer: Transfer) -> TransferPosting:
    """The result of the first posting of an already posted transfer (read, nothing written)."""
    assert transfer.transaction_id is not None
    row = conn.execute("SELECT posted_at FROM ledger_transactions WHERE id = %s", (transfer.transaction_id,)).fetchone()
    assert row is not None
    legs = [p.as_leg() for p in transaction_legs(conn, transfer.transaction_id)]
    return TransferPosting(transfer, transfer.transaction_id, row[0], legs, True)


# (conn, transfer, compensating legs) -> the legs to post: a reversal's say in its legs (the
# forced reversal of recon.reversals moves a payee's shortfall to settlement). Runs on every
# attempt, after the transfer is read; its errors propagate.
ReversalLegs = Callable[[Conn, Transfer, list[Leg]], list[Leg]]


def reverse_transfer(
    conn: Conn,
    *,
    reversal_id: UUID,
    transfer_id: UUID,
    reason: str | None,
    max_attempts: int = 5,
    adjust_legs: ReversalLegs | None = None,
    retry_insufficient: bool = False,
) -> TransferPosting:
    """Post the compensating transaction of a posted transfer (its legs inverted, or as
    `adjust_legs` makes them), set it `reversed` and write `transfer.reversed`, in one
    transaction. Idempotent by reversal id. With `retry_insufficient`, a payee that spent
    the money between the read and the posting is read again (and `adjust_legs` asked again)
    instead of raising InsufficientFunds.

    Raises:
        TransferNotFound: no such transfer.
        IllegalTransition: not posted, or already reversed by another reversal.
        VersionConflict: lost the compare-and-set (or the payee's balance) max_attempts times.
        (from the database, translated by the caller) InsufficientFunds (the payee spent
        it), AccountFrozen, AccountClosed.
    """
    for _ in range(max_attempts):
        transfer = get_transfer(conn, transfer_id)
        if transfer.status is TransferStatus.REVERSED:
            row = conn.execute(
                "SELECT id, posted_at, transfer_id FROM ledger_transactions WHERE idempotency_key = %s",
                (reversal_id,),
            ).fetchone()
            if row is None or row[2] != transfer_id:
                raise IllegalTransition(transfer_id, transfer.status.value, TransferStatus.REVERSED.value)
            legs = [p.as_leg() for p in transaction_legs(conn, row[0])]
            return TransferPosting(transfer, row[0], row[1], legs, replayed=True)
        if transfer.status is not TransferStatus.POSTED or transfer.transaction_id is None:
            raise IllegalTransition(transfer_id, transfer.status.value, TransferStatus.REVERSED.value)
        original: list[PostedLeg] = transaction_legs(conn, transfer.transaction_id)
        legs = [p.as_leg().inverted() for p in original]
        if adjust_legs is not None:
            legs = adjust_legs(conn, transfer, legs)
        transaction_id = uuid7()
        account_ids, currencies, amounts = leg_arrays(legs)
        try:
            with retryable_statement(conn):
                row = call_function(
                    conn,
                    "ledger_reverse_transfer",
                    COLUMNS,
                    _LEG_ARRAY_CASTS,
                    p_reversal_id=reversal_id,
                    p_transfer_id=transfer_id,
                    p_expected_version=transfer.version,
                    p_transaction_id=transaction_id,
                    p_reason=reason,
                    p_account_ids=account_ids,
                    p_currencies=currencies,
                    p_amounts=amounts,
                    p_event_id=event_id(transfer_id, "transfer.reversed"),
                ).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == TRANSFER_CONFLICT:
                continue  # the transfer moved on: read it again
            if retry_insufficient and isinstance(translate_error(exc), InsufficientFunds):
                continue  # the payee spent meanwhile: measure again
            raise
        assert row is not None
        reversed_transfer = from_row(row)
        return TransferPosting(reversed_transfer, transaction_id, reversed_transfer.updated_at, legs, False)
    raise VersionConflict("transfer", transfer_id, -1, None)


def list_transfers(
    conn: Conn,
    *,
    customer_id: UUID | None = None,
    status: TransferStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Transfer]:
    """Transfers newest first, keyset-paginated on (created_at, id).

    Raises: InvalidCursor.
    """
    limit = max(1, min(limit, 200))
    where = ["TRUE"]
    params: dict[str, object] = {"n": limit + 1}
    if customer_id is not None:
        where.append("customer_id = %(customer)s")
        params["customer"] = customer_id
    if status is not None:
        where.append("status = %(status)s")
        params["status"] = TransferStatus(status).value
    if cursor is not None:
        params["at"], params["tid"] = cursors.decode(cursor)
        where.append("(created_at, id) < (%(at)s, %(tid)s)")
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM transfers WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %(n)s",
        params,
    ).fetchall()
    items = [from_row(r) for r in rows[:limit]]
    next_cursor = cursors.encode(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return Page(items, next_cursor)
