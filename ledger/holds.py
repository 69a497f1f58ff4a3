"""Holds (two-phase transfers): pending -> posted | voided | expired, exactly once.

Placing a hold lowers the available balance without touching the ledger balance; posting
turns it into legs (see ledger.postings / ledger.transfers), voiding or expiring gives the
amount back. The state machine is the database's: a CHECK keeps one state, a trigger
refuses any change to a hold that left `pending`, and every transition is a conditional
UPDATE ... WHERE state = 'pending'.

A hold is always a transfer's: placed by ledger_create_transfer, ended by ledger_void_transfer
or ledger_post_transfer (ledger.transfers). This module reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from ledger.db import Conn
from ledger.errors import HoldNotFound
from ledger.states import HoldState as HoldState  # re-exported: the enum's old home


@dataclass(frozen=True, slots=True)
class Hold:
    id: UUID
    account_id: UUID
    currency: str
    amount_minor: int
    state: HoldState
    transfer_id: UUID | None
    transaction_id: UUID | None
    expires_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None


COLUMNS: Final = (
    "id, account_id, currency, amount_minor, state, transfer_id, transaction_id, expires_at, created_at, resolved_at"
)


def from_row(row: Sequence[Any]) -> Hold:
    return Hold(
        id=row[0],
        account_id=row[1],
        currency=row[2],
        amount_minor=row[3],
        state=HoldState(row[4]),
        transfer_id=row[5],
        transaction_id=row[6],
        expires_at=row[7],
        created_at=row[8],
        resolved_at=row[9],
    )


def get_hold(conn: Conn, hold_id: UUID) -> Hold:
    """Raises: HoldNotFound."""
    row = conn.execute(f"SELECT {COLUMNS} FROM holds WHERE id = %s", (hold_id,)).fetchone()
    if row is None:
        raise HoldNotFound(hold_id)
    return from_row(row)
