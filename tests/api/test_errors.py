"""Every error is an RFC 9457 problem: unknown routes, wrong methods, bad bodies, crashes."""

from __future__ import annotations

import httpx
import psycopg
from psycopg import sql
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.unavailable import unavailable_part
from tests.api.conftest import Api, bearer
from tests.api.test_auth import problem


def test_unknown_route_and_wrong_method(http: httpx.Client) -> None:
    problem(http.get("/v1/nowhere"), 404, "not_found")
    problem(http.get("/ops/v1/nowhere/else"), 404, "not_found")
    r = http.delete("/v1/signup")
    problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


def test_bad_bodies(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    problem(
        http.post("/v1/accounts", content=b"{not json", headers=bearer(token) | {"content-type": "application/json"}),
        422,
        "validation_error",
    )
    problem(
        http.post("/v1/accounts", json={"currency": "USD", "extra": 1}, headers=bearer(token)), 422, "validation_error"
    )
    problem(http.post("/v1/accounts", json=[1, 2], headers=bearer(token)), 422, "validation_error")


def test_internal_errors_do_not_leak(api: Api, http: httpx.Client) -> None:
    # A problem document names a code; no traceback or SQL ever appears in any answer.
    _, token = api.signup(http)
    r = http.get(
        "/v1/accounts/00000000-0000-0000-0000-000000000000/entries", params={"cursor": "x" * 500}, headers=bearer(token)
    )
    assert r.status_code in (404, 422)
    assert "Traceback" not in r.text and "SELECT" not in r.text


def test_openapi_documents_problems(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    op = spec["paths"]["/v1/transfers"]["post"]
    # Each error status is documented with its own codes (tests/api/test_contract.py has the rest),
    # and no catch-all `default`: an undocumented status is a contract failure.
    assert "default" not in op["responses"]
    assert "application/problem+json" in op["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in op["parameters"])
    assert http.get("/docs").status_code == 200


def test_database_down_is_a_retryable_503(api: Api, http: httpx.Client) -> None:
    """A database outage is no fault of the client's and no bug: 503 with Retry-After, not 500."""
    _, token = api.signup(http)
    assert http.get("/v1/me", headers=bearer(token)).status_code == 200
    base, dbname = api.pg_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(dbname)))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            r = http.get("/v1/me", headers=bearer(token))
            problem(r, 503, "service_unavailable")
            assert r.headers["retry-after"] == "1"
            assert r.json()["part"] == "postgresql"
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(dbname)))
    # Back by itself: the pool reconnects on the next request.
    assert http.get("/v1/me", headers=bearer(token)).status_code == 200


def test_outage_errors_are_told_apart_from_bugs() -> None:
    """Which escaped errors mean a part is down (503) and which are ours (500): a pure mapping."""
    assert unavailable_part(psycopg.OperationalError("connection refused")) == "postgresql"
    assert unavailable_part(RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")) == "temporal"
    # The server's own wait for an update ran out (seen in the chaos run while Temporal restarted).
    assert unavailable_part(WorkflowUpdateRPCTimeoutOrCancelledError()) == "temporal"
    # A connection Temporal dropped mid-call (the chaos run, many-process stack, Temporal restart).
    assert unavailable_part(RPCError("transport error", RPCStatusCode.UNKNOWN, b"")) == "temporal"
    assert unavailable_part(RPCError("something else", RPCStatusCode.UNKNOWN, b"")) is None
    assert unavailable_part(RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b"")) is None
    assert unavailable_part(ValueError("a bug")) is None
