"""Ledger records -> response schemas (and the few reads the views need besides the ledger,
in the application's one query style, on one connection per response)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Engine

from api import schemas
from api.problems import Problem
from ledger import payees
from ledger.accounts import Account
from ledger.balances import Balance, StatementEntry
from ledger.db import Conn, connection
from ledger.postings import transaction_legs
from ledger.service import Ledger
from ledger.transfers import Transfer, TransferStatus
from risk import assess as risk_assess


def balance(b: Balance) -> schemas.Balance:
    return schemas.Balance(
        account_id=b.account_id,
        currency=b.currency,
        ledger_minor=b.ledger_minor,
        available_minor=b.available_minor,
        held_minor=b.held_minor,
        as_of=b.as_of,
    )


def account(a: Account, b: Balance) -> schemas.Account:
    return schemas.Account(
        id=a.id,
        account_number=a.account_number,
        customer_id=a.customer_id,
        currency=a.currency,
        label=a.label,
        status=a.status.value,
        balance=balance(b),
        version=a.version,
        created_at=a.created_at,
    )


def account_with_balance(ledger: Ledger, a: Account) -> schemas.Account:
    return account(a, ledger.balance(a.id))


def etag(version: int) -> str:
    return f'"{version}"'


def entry(e: StatementEntry) -> schemas.Entry:
    return schemas.Entry(
        id=e.id,
        transaction_id=e.transaction_id,
        transfer_id=e.transfer_id,
        direction=e.direction.value,
        amount_minor=e.amount_minor,
        currency=e.currency,
        balance_after_minor=e.balance_after_minor,
        posted_at=e.posted_at,
        description=e.description,
    )


def otp_challenges(conn: Conn, transfer_ids: Iterable[UUID]) -> dict[UUID, schemas.Otp]:
    """OTP expiry and attempts left of transfers still waiting for their code (read-only view
    of the OTP store), so that listing transfers does not query one workflow per item."""
    ids = list(transfer_ids)
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT transfer_id, expires_at, attempts_left FROM otp_challenges "
        "WHERE transfer_id = ANY(%s) AND state = 'pending'",
        (ids,),
    ).fetchall()
    return {r[0]: schemas.Otp(expires_at=r[1], attempts_left=r[2]) for r in rows}


def risks_of(conn: Conn, transfer_ids: list[UUID]) -> dict[UUID, schemas.Risk]:
    """Each transfer's `risk` (risk.assess.risk_of), one query for a page."""
    if not transfer_ids:
        return {}
    found = risk_assess.risk_of(conn, transfer_ids)
    return {
        tid: schemas.Risk(verdict=r.verdict, reasons=r.reasons, assessed_at=r.assessed_at)  # type: ignore[arg-type]
        for tid, r in found.items()
    }


def risks(engine: Engine, transfer_ids: list[UUID]) -> dict[UUID, schemas.Risk]:
    """risks_of on a connection of its own."""
    with connection(engine) as conn:
        return risks_of(conn, transfer_ids)


def account_numbers_of(conn: Conn, items: Iterable[Transfer]) -> dict[UUID, str]:
    ids = list({i for t in items for i in (t.source_account_id, t.destination_account_id)})
    if not ids:
        return {}
    rows = conn.execute("SELECT id, account_number FROM accounts WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r[0]: r[1] for r in rows}


def transfer(
    t: Transfer,
    *,
    otp: schemas.Otp | None,
    legs: list[schemas.Leg],
    sca: payees.TransferSca | None = None,
    numbers: dict[UUID, str] | None = None,
    risk: schemas.Risk | None = None,
) -> schemas.Transfer:
    fx = None
    if t.is_fx and t.fx_rate is not None:
        fx = schemas.Fx(
            quote_id=t.fx_quote_id,
            rate=decimal_text(t.fx_rate),
            spread_bps=t.fx_spread_bps or 0,
            source_currency=t.source_currency,
            destination_currency=t.destination_currency,
        )
    return schemas.Transfer(
        id=t.id,
        status=t.status.value,
        source_account_id=t.source_account_id,
        destination_account_id=t.destination_account_id,
        amount_minor=t.amount_minor,
        currency=t.currency,
        source_amount_minor=t.source_amount_minor,
        destination_amount_minor=t.destination_amount_minor,
        fx=fx,
        otp=otp if t.status is TransferStatus.PENDING_OTP else None,
        failure_reason=t.failure_reason,
        legs=legs,
        workflow_id=t.workflow_id,
        created_at=t.created_at,
        updated_at=t.updated_at,
        risk=risk,
        sca_exemption=sca.sca_exemption.value if sca is not None else None,
        payee_id=sca.payee_id if sca is not None else None,
        standing_order_id=sca.standing_order_id if sca is not None else None,
        source_account_number=(numbers or {}).get(t.source_account_id),
        destination_account_number=(numbers or {}).get(t.destination_account_id),
    )


def transfer_legs(conn: Conn, t: Transfer) -> list[schemas.Leg]:
    if t.transaction_id is None:
        return []
    return [
        schemas.Leg(
            account_id=leg.account_id,
            direction=leg.direction.value,
            amount_minor=leg.amount_minor,
            currency=leg.currency,
        )
        for leg in transaction_legs(conn, t.transaction_id)
    ]


def transfers(ledger: Ledger, engine: Engine, items: list[Transfer]) -> list[schemas.Transfer]:
    """A page of transfers with what the views add to each (OTP, risk, SCA exemption, account
    numbers, legs), read on ONE connection, a few queries per page."""
    pending = [t.id for t in items if t.status is TransferStatus.PENDING_OTP]
    with connection(engine) as conn:
        otps = otp_challenges(conn, pending)
        risk = risks_of(conn, [t.id for t in items])
        scas = payees.exemptions_of(conn, [t.id for t in items])
        numbers = account_numbers_of(conn, items)
        legs = {t.id: transfer_legs(conn, t) for t in items}
    return [
        transfer(
            t,
            otp=otps.get(t.id),
            legs=legs[t.id],
            sca=scas.get(t.id),
            numbers=numbers,
            risk=risk.get(t.id),
        )
        for t in items
    ]


def one_transfer(ledger: Ledger, engine: Engine, t: Transfer, otp: schemas.Otp | None = None) -> schemas.Transfer:
    with connection(engine) as conn:
        if otp is None and t.status is TransferStatus.PENDING_OTP:
            otp = otp_challenges(conn, [t.id]).get(t.id)
        return transfer(
            t,
            otp=otp,
            legs=transfer_legs(conn, t),
            sca=payees.exemptions_of(conn, [t.id]).get(t.id),
            numbers=account_numbers_of(conn, [t]),
            risk=risks_of(conn, [t.id]).get(t.id),
        )


def utc(at: datetime | None) -> datetime | None:
    """A client's timestamp without an offset is taken as UTC (RFC 3339 wants one anyway)."""
    if at is None:
        return None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    try:
        return at.astimezone(UTC)
    except OverflowError as err:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise Problem(422, "validation_error", "Request is not valid", "The timestamp is out of range.") from err


def decimal_text(value: Decimal) -> str:
    """A rate as a plain decimal string without padding zeros ("0.920000000000" -> "0.92")."""
    return format(value.normalize(), "f")


def dump(model: Any) -> Any:
    """A schema as plain JSON values (for audit before/after)."""
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model
