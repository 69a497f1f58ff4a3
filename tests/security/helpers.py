"""Small helpers the security tests share: a funded customer, transfers, waiting, searching for secrets."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.api.conftest import bearer, new_key
from tests.security.conftest import SecApi

__all__ = ["Customer", "bearer", "find", "new_customer", "new_key", "start_transfer", "wait_status"]


@dataclass
class Customer:
    id: str
    email: str
    full_name: str
    token: str
    account: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


def new_customer(sec: SecApi, http: httpx.Client, *, funded_minor: int = 0, currency: str = "USD") -> Customer:
    # A distinctive name, so finding it anywhere it should not be cannot be a coincidence.
    full_name = f"Zephyrine Okonkwo-{uuid.uuid4().hex[:6]}"
    body, token = sec.signup(http, full_name)
    account = sec.open_account(http, token, currency)
    if funded_minor:
        sec.deposit(http, sec.admin_token(http), account, funded_minor)
    return Customer(str(body["customer_id"]), body["email"], full_name, token, account)


def start_transfer(
    http: httpx.Client, payer: Customer, payee: Customer, amount_minor: int, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    return http.post(
        "/v1/transfers",
        json={
            "source_account_id": payer.account["id"],
            "destination_account_id": payee.account["id"],
            "amount_minor": amount_minor,
            "currency": payer.account["currency"],
        },
        headers=payer.auth | {"Idempotency-Key": new_key()} | (headers or {}),
    )


def wait_status(http: httpx.Client, customer: Customer, transfer_id: str, *statuses: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        body = http.get(f"/v1/transfers/{transfer_id}", headers=customer.auth).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"transfer {transfer_id} stuck in {body['status']}, wanted {statuses}")
        time.sleep(0.05)


def _pattern(secret: str) -> re.Pattern[bytes]:
    # Not inside a longer run of letters or digits, and not after a '.': a six-digit code
    # must not "match" inside a hex id or the microseconds of a timestamp by chance.
    return re.compile(rb"(?<![0-9A-Za-z.])" + re.escape(secret.encode()) + rb"(?![0-9A-Za-z])")


def find(haystack: bytes | str, secrets: Iterable[str]) -> list[str]:
    """The secrets that occur in `haystack` as whole tokens."""
    data = haystack.encode() if isinstance(haystack, str) else haystack
    return [s for s in secrets if _pattern(s).search(data)]
