"""Payees (PSD2 RTS Art. 13 trusted beneficiaries) and the SCA exemption each transfer used.

A payee is `pending_otp` until its customer confirms it with an OTP bound to its account
number and name, then `trusted`; deleting it (`deleted`) ends the exemption at once: the
initiation step re-reads the payee under a share lock in the transaction that records the
exemption, and deletion takes the row's update lock, so no transfer started after a
deletion commits is exempt. Functions run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn
from ledger.errors import LedgerError
from ledger.states import PayeeStatus as PayeeStatus  # re-exported: the enum's old home
from ledger.states import ScaExemption as ScaExemption


class PayeeNotFound(LedgerError):
    code = "payee_not_found"


class PayeeNotTrusted(LedgerError):
    code = "payee_not_trusted"


@dataclass(frozen=True, slots=True)
class Payee:
    id: UUID
    customer_id: UUID
    account_id: UUID
    account_number: str
    name: str
    status: PayeeStatus
    created_at: datetime
    trusted_at: datetime | None
    deleted_at: datetime | None


COLUMNS: Final = "id, customer_id, account_id, account_number, name, status, created_at, trusted_at, deleted_at"


def from_row(row: Sequence[Any]) -> Payee:
    values = list(row)
    values[5] = PayeeStatus(values[5])
    return Payee(*values)


def create(conn: Conn, *, payee_id: UUID, customer_id: UUID, account_id: UUID, account_number: str, name: str) -> Payee:
    row = conn.execute(
        f"INSERT INTO payees (id, customer_id, account_id, account_number, name) VALUES (%s, %s, %s, %s, %s) "
        f"RETURNING {COLUMNS}",
        (payee_id, customer_id, account_id, account_number, name),
    ).fetchone()
    assert row is not None
    return from_row(row)


def get(conn: Conn, payee_id: UUID, *, lock: str = "") -> Payee:
    """`lock`: "" or "FOR UPDATE" / "FOR SHARE". Raises: PayeeNotFound."""
    assert lock in ("", "FOR UPDATE", "FOR SHARE")
    row = conn.execute(f"SELECT {COLUMNS} FROM payees WHERE id = %s {lock}", (payee_id,)).fetchone()
    if row is None:
        raise PayeeNotFound(f"payee not found: {payee_id}")
    return from_row(row)


def get_many(conn: Conn, payee_ids: Iterable[UUID]) -> dict[UUID, Payee]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM payees WHERE id = ANY(%s)", (list(payee_ids),)).fetchall()
    return {row[0]: from_row(row) for row in rows}


def list_for(conn: Conn, customer_id: UUID) -> list[Payee]:
    """The customer's payees that are not deleted, oldest first (a person has a handful)."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM payees WHERE customer_id = %s AND status <> 'deleted' ORDER BY created_at, id",
        (customer_id,),
    ).fetchall()
    return [from_row(r) for r in rows]


def set_status(conn: Conn, payee_id: UUID, status: PayeeStatus) -> Payee:
    stamp = {PayeeStatus.TRUSTED: ", trusted_at = now()", PayeeStatus.DELETED: ", deleted_at = now()"}.get(status, "")
    row = conn.execute(
        f"UPDATE payees SET status = %s{stamp} WHERE id = %s RETURNING {COLUMNS}", (status.value, payee_id)
    ).fetchone()
    if row is None:
        raise PayeeNotFound(f"payee not found: {payee_id}")
    return from_row(row)


def trusted_for(conn: Conn, customer_id: UUID, account_id: UUID, *, payee_id: UUID | None = None) -> Payee | None:
    """The customer's trusted payee for this destination (that payee, when `payee_id` is given),
    read under a share lock: a deletion waits for this transaction, and this one sees it if it
    committed first."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM payees WHERE customer_id = %(c)s AND account_id = %(a)s AND status = 'trusted' "
        "AND (%(p)s::uuid IS NULL OR id = %(p)s::uuid) ORDER BY created_at LIMIT 1 FOR SHARE",
        {"c": customer_id, "a": account_id, "p": payee_id},
    ).fetchone()
    return from_row(row) if row is not None else None


# -- the exemption each transfer used -------------------------------------------------------


def record_exemption(
    conn: Conn,
    *,
    transfer_id: UUID,
    exemption: ScaExemption,
    payee_id: UUID | None,
    standing_order_id: UUID | None,
) -> None:
    """Idempotent (a retried initiation step records it once)."""
    conn.execute(
        "INSERT INTO transfer_sca (transfer_id, sca_exemption, payee_id, standing_order_id) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (transfer_id) DO NOTHING",
        (transfer_id, exemption.value, payee_id, standing_order_id),
    )


@dataclass(frozen=True, slots=True)
class TransferSca:
    sca_exemption: ScaExemption
    payee_id: UUID | None
    standing_order_id: UUID | None
    scheduled_for: date | None


def exemptions_of(conn: Conn, transfer_ids: Iterable[UUID]) -> dict[UUID, TransferSca]:
    """How each of these transfers was exempted (absent: authorised with an OTP)."""
    ids = list(transfer_ids)
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT s.transfer_id, s.sca_exemption, s.payee_id, s.standing_order_id, r.scheduled_for "
        "FROM transfer_sca s LEFT JOIN standing_order_runs r ON r.transfer_id = s.transfer_id "
        "WHERE s.transfer_id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {r[0]: TransferSca(ScaExemption(r[1]), r[2], r[3], r[4]) for r in rows}
