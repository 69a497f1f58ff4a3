"""The chaos client signs in again when a bearer token expires mid-run (a customer's lasts an
hour; the full run is longer): the refused request is sent once more with the fresh token,
and a 401 with no fresh token stands. A pure unit test of the harness (httpx's mock transport)."""

from __future__ import annotations

import httpx
import pytest

from chaos.client import Api, ApiError, Counters
from tests.run_async import run_async


def _api(valid: set[str]) -> Api:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in valid:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json={"code": "unauthorized"})

    api = Api("http://bank.test", Counters())
    api.http = httpx.AsyncClient(base_url="http://bank.test", transport=httpx.MockTransport(answer))
    return api


def test_an_expired_token_is_renewed_once_and_the_request_sent_again() -> None:
    api = _api(valid={"fresh"})
    renewed: list[str] = []

    async def renew(expired: str) -> str | None:
        renewed.append(expired)
        return "fresh"

    api.renew = renew
    response = run_async(api.call("GET", "/v1/notifications", token="stale"))
    assert response.json() == {"ok": True}
    assert renewed == ["stale"]


def test_a_401_without_a_fresh_token_stands() -> None:
    api = _api(valid=set())

    async def renew(expired: str) -> str | None:
        return None

    api.renew = renew
    with pytest.raises(ApiError) as refused:
        run_async(api.call("GET", "/v1/notifications", token="stale"))
    assert refused.value.code == "unauthorized"
