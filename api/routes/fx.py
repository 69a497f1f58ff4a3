"""Indicative FX quotes for customers (/v1/fx/quote): what a transfer would convert to now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api import schemas, views
from api.contract import declare
from api.deps import CurrentCustomer, RuntimeDep
from api.errors import ledger_errors, refusal
from fx.quotes import indicative_quote
from ledger.errors import LedgerError
from ledger.fx import FixedSide
from ledger.money import validate_currency

router = APIRouter(tags=["customer: fx"])


@router.get("/fx/quote", response_model=schemas.Quote)
@declare("unsupported_pair", "invalid_amount")
def quote(
    customer: CurrentCustomer,
    runtime: RuntimeDep,
    source_currency: Annotated[str, Query(max_length=16)],
    destination_currency: Annotated[str, Query(max_length=16)],
    amount_minor: Annotated[int, Query(gt=0, le=2**63 - 1, description="Amount leaving the source, minor units")],
) -> schemas.Quote:
    try:
        validate_currency(source_currency)
        validate_currency(destination_currency)
    except LedgerError as err:
        raise refusal("unsupported_pair", "No rate is quoted for this currency pair.") from err
    if source_currency == destination_currency:
        raise refusal("unsupported_pair", "Both currencies are the same: no conversion is needed.")
    with ledger_errors():
        conversion = indicative_quote(
            runtime.rates,
            source=source_currency,
            destination=destination_currency,
            amount_minor=amount_minor,
            fixed=FixedSide.SOURCE,
        )
    return schemas.Quote(
        source_currency=source_currency,
        destination_currency=destination_currency,
        rate=views.decimal_text(conversion.rate),
        spread_bps=conversion.spread_bps,
        source_amount_minor=conversion.source_amount_minor,
        spread_minor=conversion.spread_minor,
        destination_amount_minor=conversion.destination_amount_minor,
        as_of=datetime.now(UTC),
    )
