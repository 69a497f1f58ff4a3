"""The indicative FX preview on the new-transfer form (GET /v1/fx/quote underneath).

A transfer's `currency` names its fixed side: the source's currency (what leaves) or the
payee's (what arrives). The quote endpoint fixes the source side, so for a payee-fixed amount
the preview runs the quote's rate and spread through ledger.fx.convert with the payee's side
fixed; it is marked "about" either way, and the firm rate is taken when the customer confirms
with the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.errors import LedgerError
from ledger.fx import FixedSide, convert
from portal import format as fmt
from portal.apiclient import ApiClient, ApiProblem


@dataclass(frozen=True)
class Preview:
    source_minor: int
    source_currency: str
    destination_minor: int
    destination_currency: str
    rate: str
    spread_bps: int
    fixed: str  # "source" or "destination"


def destination_currency(
    accounts: list[dict[str, Any]], destination_number: str, source_currency: str, currency: str
) -> str | None:
    """The payee account's currency when the customer can know it: one of their own accounts
    (by its normalized number), or implied by a transfer currency other than the source's.
    None when it is unknown."""
    own = next((a for a in accounts if a["account_number"] == destination_number), None)
    if own is not None:
        return str(own["currency"])
    return currency if currency and currency != source_currency else None


async def preview(
    api: ApiClient, *, source_currency: str, destination_currency: str, amount_minor: int, currency: str
) -> Preview | None:
    """None when no conversion happens.

    Raises:
        ApiProblem: unsupported_pair and the like (shown next to the form).
    """
    if source_currency == destination_currency:
        return None
    if currency == source_currency:
        q = await api.get(
            "/v1/fx/quote",
            source_currency=source_currency,
            destination_currency=destination_currency,
            amount_minor=amount_minor,
        )
        return Preview(
            source_minor=amount_minor,
            source_currency=source_currency,
            destination_minor=int(q["destination_amount_minor"]),
            destination_currency=destination_currency,
            rate=str(q["rate"]),
            spread_bps=int(q["spread_bps"]),
            fixed="source",
        )
    if currency != destination_currency:
        raise ApiProblem(422, {"code": "currency_mismatch"})
    # Payee-fixed: the quote's rate and spread through the ledger's own conversion, the one the
    # firm posting uses (rounding in the house's favour), on any amount of the source side.
    probe = 1_000_000 * 10 ** fmt.exponent(source_currency)
    q = await api.get(
        "/v1/fx/quote", source_currency=source_currency, destination_currency=destination_currency, amount_minor=probe
    )
    try:
        conversion = convert(
            source_currency,
            destination_currency,
            FixedSide.DESTINATION,
            amount_minor,
            Decimal(str(q["rate"])),
            int(q["spread_bps"]),
        )
    except LedgerError as err:
        raise ApiProblem(422, {"code": "quote_unavailable"}) from err
    source_minor = conversion.source_amount_minor
    return Preview(
        source_minor=source_minor,
        source_currency=source_currency,
        destination_minor=amount_minor,
        destination_currency=destination_currency,
        rate=str(q["rate"]),
        spread_bps=int(q["spread_bps"]),
        fixed="destination",
    )
