"""FX rates managed by ops (/ops/v1/fx/rates): anyone reads, admins set (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from api import schemas, views
from api.contract import declare
from api.deps import Admin, AnyStaff, DbConn, EngineDep, client_ip
from api.errors import from_ledger, refusal
from fx import rates as fx_rates
from ledger import audit
from ledger.errors import CurrencyMismatch, LedgerError
from ledger.uow import UnitOfWork

router = APIRouter(tags=["ops: fx"])

CurrencyPath = Annotated[str, Path(pattern="^[A-Z]{3}$", examples=["USD"])]


def _view(rate: fx_rates.Rate) -> schemas.FxRate:
    return schemas.FxRate(
        base=rate.base,
        quote=rate.quote,
        rate=views.decimal_text(rate.rate),
        spread_bps=rate.spread_bps,
        updated_at=rate.updated_at,
        updated_by=rate.updated_by,
        version=rate.version,
    )


@router.get("/fx/rates", response_model=schemas.Page[schemas.FxRate])
def list_rates(staff: AnyStaff, conn: DbConn) -> schemas.Page[schemas.FxRate]:
    # A few dozen pairs at most: one page.
    return schemas.Page[schemas.FxRate](items=[_view(r) for r in fx_rates.list_rates(conn)], next_cursor=None)


@router.get("/fx/rates/{base}/{quote}", response_model=schemas.FxRate)
@declare("unsupported_pair")
def get_rate(staff: AnyStaff, conn: DbConn, base: CurrencyPath, quote: CurrencyPath) -> schemas.FxRate:
    try:
        return _view(fx_rates.get_rate(conn, base, quote))
    except fx_rates.UnsupportedPair as err:
        raise refusal("unsupported_pair", f"No rate for {base}/{quote}.") from err


@router.put("/fx/rates/{base}/{quote}", response_model=schemas.FxRate)
@declare("unsupported_pair", "invalid_rate", "unsupported_currency")
def put_rate(
    body: schemas.FxRateIn,
    admin: Admin,
    engine: EngineDep,
    request: Request,
    base: CurrencyPath,
    quote: CurrencyPath,
) -> schemas.FxRate:
    with UnitOfWork(engine) as uow:
        conn = uow.sql
        try:
            before = _view(fx_rates.get_rate(conn, base, quote)).model_dump(mode="json")
        except fx_rates.UnsupportedPair:
            before = None
        try:
            rate = fx_rates.set_rate(
                conn, base=base, quote=quote, rate=body.rate, spread_bps=body.spread_bps, updated_by=admin.email
            )
        except CurrencyMismatch as err:
            raise refusal("unsupported_pair", "A rate needs two different currencies.") from err
        except LedgerError as err:
            raise from_ledger(err) from err
        view = _view(rate)
        audit.record(
            conn,
            actor=admin.actor,
            action="fx.rate_set",
            target_type="fx_rate",
            target_id=f"{base}/{quote}",
            before=before,
            after=view.model_dump(mode="json"),
            ip=client_ip(request),
        )
        uow.commit()
    return view
