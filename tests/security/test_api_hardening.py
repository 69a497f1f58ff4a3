"""API hardening: rate limits, body size, what an internal error shows, id validation, login throttle."""

from __future__ import annotations

import concurrent.futures
import inspect
import typing
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from api.app import create_app
from api.ratelimit import RatePolicy
from security.ratelimit import Rule
from tests.api.conftest import bearer, new_key
from tests.security.conftest import SecApi
from tests.security.helpers import Customer, new_customer

# -- rate limits -------------------------------------------------------------------------------


@pytest.fixture
def tight_limits(sec: SecApi) -> Iterator[None]:
    limits = sec.runtime.rate_limits
    saved = limits.policy
    limits.policy = RatePolicy(
        transfers_per_customer=Rule("transfers_per_customer", 3, 60),
        transfers_per_ip=Rule("transfers_per_ip", 5, 60),
        otp_per_customer=Rule("otp_per_customer", 3, 60),
        otp_per_ip=Rule("otp_per_ip", 5, 60),
    )
    limits.limiter.reset()
    yield
    limits.policy = saved
    limits.limiter.reset()


def from_ip(ip: str) -> dict[str, str]:
    # uvicorn takes the client address from X-Forwarded-For when the peer is a trusted proxy
    # (127.0.0.1 by default), which is how the API sees clients behind a local reverse proxy.
    return {"X-Forwarded-For": ip}


def create(http: httpx.Client, customer: Customer, ip: str) -> httpx.Response:
    # The body is refused (422) after the limiter counted the request: no workflow is started.
    return http.post("/v1/transfers", json={}, headers=customer.auth | {"Idempotency-Key": new_key()} | from_ip(ip))


def otp(http: httpx.Client, customer: Customer, ip: str) -> httpx.Response:
    return http.post(f"/v1/transfers/{uuid.uuid4()}/otp", json={"code": "123456"}, headers=customer.auth | from_ip(ip))


@pytest.mark.usefixtures("tight_limits")
@pytest.mark.parametrize("send", [create, otp], ids=["transfer_creation", "otp_submission"])
def test_per_principal_limit_follows_the_customer_across_addresses(sec: SecApi, http: httpx.Client, send: Any) -> None:
    alice = new_customer(sec, http)
    for n in range(3):
        assert send(http, alice, f"10.1.0.{n}").status_code in (404, 422)
    refused = send(http, alice, "10.1.0.99")
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Someone else is not affected.
    assert send(http, new_customer(sec, http), "10.1.0.99").status_code in (404, 422)


@pytest.mark.usefixtures("tight_limits")
@pytest.mark.parametrize("send", [create, otp], ids=["transfer_creation", "otp_submission"])
def test_per_ip_limit_spans_customers(sec: SecApi, http: httpx.Client, send: Any) -> None:
    customers = [new_customer(sec, http) for _ in range(3)]
    sent = [send(http, customers[n % 3], "10.2.0.1").status_code for n in range(5)]
    assert all(s in (404, 422) for s in sent), sent
    refused = send(http, customers[0], "10.2.0.1")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert send(http, customers[0], "10.2.0.2").status_code in (404, 422)


def test_login_throttle_refuses_after_ten_failures_with_retry_after(sec: SecApi, http: httpx.Client) -> None:
    customer = new_customer(sec, http)
    ip = from_ip(f"10.3.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    for _ in range(10):
        r = http.post("/v1/auth/token", data={"username": customer.email, "password": "wrong-password"}, headers=ip)
        assert r.status_code == 401
    r = http.post("/v1/auth/token", data={"username": customer.email, "password": "wrong-password"}, headers=ip)
    assert r.status_code == 429 and r.json()["code"] == "too_many_attempts" and int(r.headers["Retry-After"]) > 0


def test_login_throttle_holds_under_concurrent_guessing(sec: SecApi, http: httpx.Client) -> None:
    """Parallel guesses must not all pass the check before any failure is counted."""
    customer = new_customer(sec, http)

    def guess(n: int) -> int:
        with sec.client() as own:
            return own.post(
                "/v1/auth/token",
                data={"username": customer.email, "password": f"guess-{n}"},
                headers=from_ip(f"10.4.{n // 250}.{n % 250}"),
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(guess, range(30)))
    assert statuses.count(401) <= 10, statuses
    assert statuses.count(429) >= 20, statuses


# -- request size ------------------------------------------------------------------------------


def test_oversized_body_is_refused_before_it_is_read(sec: SecApi, http: httpx.Client) -> None:
    alice = new_customer(sec, http)
    big = {"source_account_id": str(uuid.uuid4()), "description": "x" * 70_000}
    answer = http.post("/v1/transfers", json=big, headers=alice.auth | {"Idempotency-Key": new_key()})
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "payload_too_large"


def test_oversized_chunked_body_without_length_is_refused(sec: SecApi, http: httpx.Client) -> None:
    alice = new_customer(sec, http)

    def chunks() -> Iterator[bytes]:
        yield b'{"description": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    answer = http.post(
        "/v1/transfers",
        content=chunks(),
        headers=alice.auth | {"Idempotency-Key": new_key(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["code"] == "payload_too_large"


def test_oversized_login_form_is_refused(http: httpx.Client) -> None:
    answer = http.post("/ops/v1/auth/token", data={"username": "a", "password": "p" * 80_000})
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"


def test_statement_import_keeps_its_own_larger_limit(sec: SecApi, http: httpx.Client) -> None:
    operator = sec.staff(http, "operator")
    answer = http.post(
        f"/ops/v1/reconciliation/statements?account_id={uuid.uuid4()}",
        content=b"date,amount\n" + b"2026-01-01,1\n" * 10_000,  # ~140 KiB: over the default, under its 10 MiB
        headers=bearer(operator) | {"Content-Type": "text/csv", "Idempotency-Key": new_key()},
    )
    assert answer.status_code != 413, answer.text


# -- internal errors ---------------------------------------------------------------------------

LEAKS = ("Traceback", 'File "', "SELECT", "no_such_table", "secret_column", "psycopg", "sqlalchemy", "/srv/", ".py")


@pytest.mark.parametrize("path", ["/__test__/sql-error", "/__test__/crash"])
def test_internal_errors_show_no_trace_or_sql(http: httpx.Client, path: str) -> None:
    answer = http.get(path)
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "internal_error" and body["status"] == 500
    assert not [leak for leak in LEAKS if leak in answer.text], answer.text


# -- ids ---------------------------------------------------------------------------------------


def test_every_id_parameter_is_a_uuid() -> None:
    """Path and query parameters named *_id are typed UUID, so FastAPI refuses anything else."""
    from fastapi.routing import iter_route_contexts

    untyped = []
    checked = 0
    for context in iter_route_contexts(create_app().routes):
        path = context.path or ""
        if not path.startswith(("/v1/", "/ops/v1/")) or context.endpoint is None:
            continue
        hints = typing.get_type_hints(context.endpoint, include_extras=True)
        for name, parameter in inspect.signature(context.endpoint).parameters.items():
            if name.endswith("_id") and (f"{{{name}}}" in path or parameter.default is not inspect.Parameter.empty):
                checked += 1
                if UUID not in _types(hints[name]):
                    untyped.append(f"{path}: {name}: {hints[name]}")
    assert checked >= 15 and not untyped, untyped


def _types(annotation: Any) -> set[Any]:
    """UUID, UUID | None and Annotated[UUID | None, Query()] all contain UUID."""
    args = getattr(annotation, "__args__", None) or getattr(annotation, "__origin__", None)
    found = {annotation}
    for arg in args if isinstance(args, tuple) else ((args,) if args is not None else ()):
        found |= _types(arg)
    return found


@pytest.fixture(scope="module")
def reader(sec: SecApi) -> Customer:
    with sec.client() as http:
        return new_customer(sec, http)


@pytest.mark.parametrize("bad", ["not-a-uuid", "1 OR 1=1", "%27%3B--", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_ids_are_422_and_not_echoed(http: httpx.Client, reader: Customer, bad: str) -> None:
    for path in (f"/v1/transfers/{bad}", f"/v1/accounts/{bad}/balance"):
        answer = http.get(path, headers=reader.auth)

        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "validation_error"
        assert bad not in answer.text and "OR 1=1" not in answer.text
