"""Maker-checker reversal of posted transfers.

An operator requests (`pending_approval`); a different staff member with the approver role
approves or rejects. Approval posts ONE compensating ledger transaction with
ledger.transfers.reverse_transfer (the original legs inverted; nothing is edited), which also sets the
transfer `reversed` and writes `transfer.reversed`, keyed on the reversal id, so a retried
approval posts nothing twice. The reversal row links to that transaction; the ledger links
back (ledger_transactions.idempotency_key = reversal id, transfers.reversal_transaction_id).

Overdraw: the payee may have spent the money. Without `force` the approval is refused
(ReversalWouldOverdraw). With `force`, the payee gives back what it has available and the
shortfall is debited to the house `settlement:<currency>` account (house accounts may go
negative; customer accounts never do, the database forbids it), through the same ledger
function and retry loop, with the payee's leg split in two. The shortfall is
recorded on the reversal: a receivable from the payee that ops must collect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ledger import cursors
from ledger.accounts import AccountKind, ensure_house_accounts
from ledger.db import Conn
from ledger.errors import IllegalTransition, TransferNotFound
from ledger.ids import house_account_id
from ledger.legs import Direction, Leg
from ledger.postings import transaction_legs
from ledger.transfers import Transfer, TransferStatus
from ledger.uow import UnitOfWork
from recon.errors import (
    FourEyesRequired,
    NotReversible,
    ReversalNotFound,
    ReversalNotPending,
    ReversalWouldOverdraw,
)

_COLUMNS: Final = (
    "id, transfer_id, status, reason, requested_by, requested_at, decided_by, decided_at, decision_reason, "
    "forced, transaction_id, shortfall_minor, shortfall_currency, version"
)
_MAX_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class Reversal:
    id: UUID
    transfer_id: UUID
    status: str  # pending_approval | approved | rejected
    reason: str
    requested_by: UUID
    requested_at: datetime
    decided_by: UUID | None
    decided_at: datetime | None
    decision_reason: str | None
    forced: bool
    transaction_id: UUID | None
    shortfall_minor: int
    shortfall_currency: str | None
    version: int

    def as_audit(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("requested_at", "decided_at")}


@dataclass(frozen=True, slots=True)
class Approval:
    reversal: Reversal
    replayed: bool  # the ledger had posted it already (a retried approval)


def _from_row(row: Any) -> Reversal:
    return Reversal(*row)


def get_reversal(conn: Conn, reversal_id: UUID, *, lock: bool = False) -> Reversal:
    """Raises: ReversalNotFound."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM reversals WHERE id = %s" + (" FOR UPDATE" if lock else ""), (reversal_id,)
    ).fetchone()
    if row is None:
        raise ReversalNotFound(f"reversal {reversal_id} not found")
    return _from_row(row)


def request_reversal(
    conn: Conn, *, reversal_id: UUID, transfer_id: UUID, requested_by: UUID, reason: str
) -> tuple[Reversal, bool]:
    """Record a request to reverse a posted transfer; (reversal, created). A second call with
    the same reversal id returns the first request (created False).

    Raises:
        TransferNotFound: no such transfer.
        NotReversible: the transfer is not posted, or already has a pending or approved reversal.
    """
    existing = conn.execute(f"SELECT {_COLUMNS} FROM reversals WHERE id = %s", (reversal_id,)).fetchone()
    if existing is not None:
        return _from_row(existing), False
    row = conn.execute("SELECT status FROM transfers WHERE id = %s", (transfer_id,)).fetchone()
    if row is None:
        raise TransferNotFound(transfer_id)
    if row[0] != TransferStatus.POSTED.value:
        raise NotReversible(transfer_id, f"it is {row[0]}, not posted")
    inserted = conn.execute(
        f"INSERT INTO reversals (id, transfer_id, status, reason, requested_by) "
        f"VALUES (%s, %s, 'pending_approval', %s, %s) "
        f"ON CONFLICT (transfer_id) WHERE status <> 'rejected' DO NOTHING RETURNING {_COLUMNS}",
        (reversal_id, transfer_id, reason, requested_by),
    ).fetchone()
    if inserted is None:
        live = conn.execute(
            "SELECT id, status FROM reversals WHERE transfer_id = %s AND status <> 'rejected'", (transfer_id,)
        ).fetchone()
        other = live[0] if live else None
        state = live[1] if live else "requested"
        raise NotReversible(transfer_id, f"reversal {other} is already {state}", reversal_id=other)
    return _from_row(inserted), True


def _decidable(reversal: Reversal, staff_id: UUID) -> None:
    """Raises: ReversalNotPending, FourEyesRequired."""
    if reversal.status != "pending_approval":
        raise ReversalNotPending(reversal.id, reversal.status)
    if reversal.requested_by == staff_id:
        raise FourEyesRequired(f"reversal {reversal.id} was requested by this staff member; another must decide")


def _payee_take_back(legs: list[Leg], payee: UUID) -> int:
    """What the compensating legs take from the payee (net debit, minor units)."""
    return sum(-leg.signed_minor for leg in legs if leg.account_id == payee)


def _available(conn: Conn, account_id: UUID) -> int:
    row = conn.execute(
        "SELECT ledger_minor - held_minor FROM account_balances WHERE account_id = %s", (account_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def _cover_shortfall(legs: list[Leg], payee: UUID, shortfall: int, settlement: UUID) -> list[Leg]:
    """The compensating legs with `shortfall` of the payee's debit moved to settlement."""
    take = _payee_take_back(legs, payee)
    currency = next(leg.currency for leg in legs if leg.account_id == payee)
    out: list[Leg] = []
    for leg in legs:
        if leg.account_id != payee:
            out.append(leg)
        elif not any(o.account_id == payee for o in out) and take - shortfall > 0:
            out.append(Leg(payee, Direction.DEBIT, take - shortfall, currency))
    out.append(Leg(settlement, Direction.DEBIT, shortfall, currency))
    return out


@dataclass(frozen=True, slots=True)
class _Posted:
    transaction_id: UUID
    shortfall_minor: int
    currency: str
    replayed: bool


def _shortfall_of(conn: Conn, transfer: Transfer, legs: list[Leg]) -> int:
    """What a posted reversal (`legs`) took from settlement beyond what the transfer gave it."""
    settlement = house_account_id(AccountKind.SETTLEMENT, transfer.destination_currency)
    taken = sum(leg.amount_minor for leg in legs if leg.account_id == settlement and leg.direction is Direction.DEBIT)
    given = sum(
        leg.amount_minor
        for leg in (transaction_legs(conn, transfer.transaction_id) if transfer.transaction_id else [])
        if leg.account_id == settlement and leg.direction is Direction.CREDIT
    )
    return max(taken - given, 0)


def _post(uow: UnitOfWork, reversal: Reversal, reason: str, *, force: bool) -> _Posted:
    """Post the compensating transaction in `uow` with ledger.transfers.reverse_transfer (its
    retry loop and SQL call); with `force` and a shortfall, the payee's debit split (module
    docstring), measured again on every attempt.

    Raises:
        NotReversible: the transfer is no longer posted (or another reversal reversed it).
        ReversalWouldOverdraw: the payee lacks the money and `force` is false.
        VersionConflict: lost the race on the transfer row repeatedly.
        AccountFrozen, AccountClosed: an account of the legs takes no postings.
    """

    def cover(conn: Conn, transfer: Transfer, legs: list[Leg]) -> list[Leg]:
        payee = transfer.destination_account_id
        take = _payee_take_back(legs, payee)
        available = _available(conn, payee)
        shortfall = max(0, take - max(available, 0))
        if not shortfall:
            return legs
        if not force:
            raise ReversalWouldOverdraw(payee, transfer.destination_currency, available, take)
        with conn.transaction():
            ensure_house_accounts(conn, [transfer.destination_currency])
        settlement = house_account_id(AccountKind.SETTLEMENT, transfer.destination_currency)
        return _cover_shortfall(legs, payee, shortfall, settlement)

    try:
        posting = uow.transfers.reverse(
            reversal_id=reversal.id,
            transfer_id=reversal.transfer_id,
            reason=reason,
            adjust_legs=cover,
            retry_insufficient=True,
        )
    except IllegalTransition as exc:
        if exc.current == TransferStatus.REVERSED.value:
            raise NotReversible(reversal.transfer_id, "it was reversed by another reversal") from exc
        raise NotReversible(reversal.transfer_id, f"it is {exc.current}, not posted") from exc
    shortfall = _shortfall_of(uow.conn, posting.transfer, posting.legs)
    return _Posted(posting.transaction_id, shortfall, posting.transfer.destination_currency, posting.replayed)


def approve_reversal(
    uow: UnitOfWork, *, reversal_id: UUID, approver_id: UUID, force: bool, reason: str | None
) -> Approval:
    """Approve and post, in the caller's unit of work: the decision, the compensating
    transaction (and the caller's audit row) commit together or not at all. The reversal row
    stays locked until the unit ends, so two approvers of one reversal queue (the second
    finds it approved).

    Raises:
        ReversalNotFound; ReversalNotPending; FourEyesRequired (the approver requested it);
        NotReversible; ReversalWouldOverdraw (without force); VersionConflict;
        AccountFrozen, AccountClosed (from the ledger).
    """
    conn = uow.conn
    reversal = get_reversal(conn, reversal_id, lock=True)
    _decidable(reversal, approver_id)
    posted = _post(uow, reversal, reason or reversal.reason, force=force)
    row = conn.execute(
        f"""
        UPDATE reversals
           SET status = 'approved', decided_by = %s, decided_at = now(), decision_reason = %s, forced = %s,
               transaction_id = %s, shortfall_minor = %s, shortfall_currency = %s, version = version + 1
         WHERE id = %s
        RETURNING {_COLUMNS}
        """,
        (
            approver_id,
            reason,
            force,
            posted.transaction_id,
            posted.shortfall_minor,
            posted.currency if posted.shortfall_minor else None,
            reversal_id,
        ),
    ).fetchone()
    assert row is not None  # locked above
    return Approval(_from_row(row), posted.replayed)


def reject_reversal(conn: Conn, *, reversal_id: UUID, staff_id: UUID, reason: str) -> Reversal:
    """Raises: ReversalNotFound, ReversalNotPending, FourEyesRequired."""
    reversal = get_reversal(conn, reversal_id, lock=True)
    _decidable(reversal, staff_id)
    row = conn.execute(
        f"UPDATE reversals SET status = 'rejected', decided_by = %s, decided_at = now(), decision_reason = %s, "
        f"version = version + 1 WHERE id = %s RETURNING {_COLUMNS}",
        (staff_id, reason, reversal_id),
    ).fetchone()
    assert row is not None
    return _from_row(row)


def list_reversals(
    conn: Conn, *, status: str | None, transfer_id: UUID | None, limit: int, cursor: str | None
) -> tuple[list[Reversal], str | None]:
    """Newest first; keyset cursor on (requested_at, id).

    Raises: ValueError (a cursor this list did not hand out).
    """
    where = ["TRUE"]
    params: dict[str, Any] = {"n": limit + 1}
    if status:
        where.append("status = %(status)s")
        params["status"] = status
    if transfer_id:
        where.append("transfer_id = %(transfer_id)s")
        params["transfer_id"] = transfer_id
    if cursor:
        params["at"], params["rid"] = cursors.decode(cursor)
        where.append("(requested_at, id) < (%(at)s, %(rid)s)")
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM reversals WHERE {' AND '.join(where)} ORDER BY requested_at DESC, id DESC LIMIT %(n)s",
        params,
    ).fetchall()
    items = [_from_row(r) for r in rows[:limit]]
    return items, (cursors.encode(items[-1].requested_at, items[-1].id) if len(rows) > limit else None)
