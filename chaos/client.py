"""An HTTP client for the Ledgerflow API that behaves like a careful real client.

Money-moving POSTs carry an Idempotency-Key and are retried with the *same* key after a
timeout, a dropped connection or a 5xx, so a request whose answer was lost is never
performed twice; the counters record every retry and every replay the server absorbed.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_STATUS = {409, 429, 500, 502, 503, 504}


@dataclass
class Counters:
    retries: int = 0
    duplicates_absorbed: int = 0
    requests: int = 0
    # Status codes the client saw, for the report (e.g. 503 while Temporal restarts).
    statuses: dict[int, int] = field(default_factory=dict)
    # Every 5xx by status, problem code and route ("500 internal_error POST /v1/transfers"),
    # so a report that counts them also says where to look.
    server_errors: dict[str, int] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        self.code = str(body.get("code", response.status_code))
        super().__init__(f"{response.request.method} {response.request.url.path}: {response.status_code} {self.code}")


class Api:
    def __init__(self, base_url: str, counters: Counters, *, timeout_s: float = 30.0, give_up_s: float = 180.0) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self.counters = counters
        self.give_up_s = give_up_s
        # Bearer tokens expire (a customer's after an hour): a long run signs in again. Given
        # the token the API refused, it returns a fresh one (or None: the 401 stands).
        self.renew: Callable[[str], Awaitable[str | None]] | None = None

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: Any = None,
        idempotent: bool = False,
        timeout_s: float | None = None,
        retry_on: set[int] = RETRYABLE_STATUS,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send until a definite answer; raise ApiError for a final 4xx (other than retryable ones).

        Only idempotent calls (GETs, and POSTs with an Idempotency-Key) are retried after a
        transport error, whose effect is unknown. A 5xx is retried for any call: the API
        answers 503 when Temporal or PostgreSQL is away, before anything happened; a callers'
        state machine (the workflow) absorbs the rare repeat of a non-idempotent call.
        """
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if idempotent and method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        retry_transport = idempotent or method == "GET"
        deadline = time.monotonic() + self.give_up_s
        delay = 0.05
        while True:
            self.counters.requests += 1
            try:
                response = await self.http.request(
                    method,
                    path,
                    headers=headers,
                    json=json,
                    data=data,
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except (httpx.TransportError, httpx.TimeoutException):
                if not retry_transport or time.monotonic() > deadline:
                    raise
                self.counters.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.counters.statuses[response.status_code] = self.counters.statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                where = f"{response.status_code} {_code(response)} {method} {_route(path)}"
                self.counters.server_errors[where] = self.counters.server_errors.get(where, 0) + 1
            if response.headers.get("Idempotent-Replayed") == "true":
                self.counters.duplicates_absorbed += 1
            retryable = response.status_code in retry_on and (
                response.status_code != 409 or _code(response) == "idempotency_key_in_flight"
            )
            if retryable and (retry_transport or response.status_code >= 500) and time.monotonic() < deadline:
                self.counters.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code == 401 and token and self.renew is not None:
                fresh = await self.renew(token)
                if fresh is not None and fresh != token:
                    token = fresh
                    headers["Authorization"] = f"Bearer {token}"
                    continue
            if response.status_code >= 400:
                raise ApiError(response)
            return response


_ID: re.Pattern[str] = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _route(path: str) -> str:
    """The path with its ids replaced, so errors on the same route count together."""
    return _ID.sub("{id}", path.split("?", 1)[0])


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""
