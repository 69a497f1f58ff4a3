"""The portal's payee-fixed FX preview is ledger.fx.convert with the payee's side fixed (a pure
unit test: the quote endpoint is replaced by the same conversion at a fixed rate)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from ledger.fx import FixedSide, convert
from portal.apiclient import ApiClient
from portal.fx_preview import preview
from tests.run_async import run_async

RATE = Decimal("0.917342")
SPREAD_BPS = 35


class QuoteEndpoint:
    """GET /v1/fx/quote at a fixed rate and spread (source side fixed, as the API quotes)."""

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        assert path == "/v1/fx/quote"
        c = convert(
            params["source_currency"],
            params["destination_currency"],
            FixedSide.SOURCE,
            params["amount_minor"],
            RATE,
            SPREAD_BPS,
        )
        return {"rate": str(c.rate), "spread_bps": c.spread_bps, "destination_amount_minor": c.destination_amount_minor}


def payee_fixed(amount_minor: int) -> Any:
    api = cast(ApiClient, QuoteEndpoint())
    return run_async(
        preview(api, source_currency="USD", destination_currency="EUR", amount_minor=amount_minor, currency="EUR")
    )


def test_payee_fixed_preview_is_the_ledgers_conversion() -> None:
    for amount_minor in (1, 99, 5_000, 123_457, 10**12):
        shown = payee_fixed(amount_minor)
        expected = convert("USD", "EUR", FixedSide.DESTINATION, amount_minor, RATE, SPREAD_BPS)
        assert (shown.source_minor, shown.destination_minor) == (expected.source_amount_minor, amount_minor)
        assert shown.fixed == "destination"
        # Sending the previewed source amount delivers at least what the payee is promised.
        sent = convert("USD", "EUR", FixedSide.SOURCE, shown.source_minor, RATE, SPREAD_BPS)
        assert sent.destination_amount_minor >= amount_minor
