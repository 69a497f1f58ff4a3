"""The portals' only way to the ledger: the JSON API, called in-process with the user's token.

`httpx.ASGITransport` runs the very app that serves the portal, so every rule (ownership 404s,
roles, idempotency, problem codes, audit, throttling) is the API's own and nothing is
re-implemented here. The browser's address is passed on as the ASGI client, so the API's
login throttling and audit log see the person, not 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import httpx
from starlette.types import ASGIApp

from portal.messages import problem_message

# Never used on the network: ASGITransport hands the request straight to the app.
DEFAULT_BASE_URL: Final = "http://ledgerflow.internal"
TIMEOUT_S: Final = 30.0


class ApiProblem(Exception):
    """An RFC 9457 problem (or any error status) the API answered with."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        self.code = str(body.get("code") or f"http_{status}")
        super().__init__(f"{status} {self.code}")

    @property
    def message(self) -> str:
        return problem_message(self.code, self.body)

    @property
    def route_missing(self) -> bool:
        """The API has no such route at all (as opposed to 'no such thing'): a feature another
        part of the system has not shipped yet."""
        # The app's generic 404 (`not_found`, or no problem document at all), not a resource's.
        return (self.status == 404 and self.code in ("not_found", "http_404")) or self.status == 405


class NotAuthenticated(Exception):
    """The API refused the session's token (expired, revoked): the user must log in again."""


class ApiClient:
    def __init__(self, app: ASGIApp, *, token: str | None, client_ip: str, base_url: str = DEFAULT_BASE_URL) -> None:
        self._token = token
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(client_ip, 0)),
            base_url=base_url,
            timeout=TIMEOUT_S,
            # No proxies or .netrc from the environment: this client never leaves the process.
            trust_env=False,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The raw response (no status check)."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self._token:
            all_headers["Authorization"] = f"Bearer {self._token}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return await self._http.request(method, path, params=clean, json=json, data=data, headers=all_headers)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        in_flight_wait_s: float = 0.0,
    ) -> Any:
        """The decoded JSON body of a 2xx answer (None for 204).

        `in_flight_wait_s`: when the API says the same Idempotency-Key is still being processed
        (a double submit racing the first one), wait for the first to finish and return its
        replayed answer instead of showing an error.

        Raises:
            NotAuthenticated: 401 with a token (the session's token is no longer valid).
            ApiProblem: any other error status.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + in_flight_wait_s
        while True:
            response = await self.send(method, path, params=params, json=json, data=data, headers=headers)
            if response.status_code < 400:
                return None if response.status_code == 204 or not response.content else response.json()
            problem = _problem(response)
            if problem.status == 401 and self._token:
                raise NotAuthenticated(problem.code)
            if problem.code == "idempotency_key_in_flight" and loop.time() < deadline:
                await asyncio.sleep(0.2)
                continue
            raise problem

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)


def _problem(response: httpx.Response) -> ApiProblem:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"detail": response.text[:200]}
    return ApiProblem(response.status_code, body)
