"""Every /ops/v1 route, called by every staff role, by a customer and by nobody, checked against
ONE matrix of who may call what (docs/api.md). Allowed means anything but 401/403 (a 404 or 422
for the made-up ids and empty bodies used here is fine: the role check came first).

Routes are enumerated from the application itself: a route added without a line in MATRIX
fails `test_every_ops_route_has_a_matrix_entry`, and then its own case here.
Every refusal must also be in the audit log, with who was refused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from tests.api.conftest import bearer, new_key
from tests.security.conftest import SecApi
from tests.security.helpers import new_customer

STAFF_ROLES: Final = ("operator", "approver", "auditor", "admin")
PRINCIPALS: Final = (*STAFF_ROLES, "customer", "nobody")

PUBLIC: Final = frozenset(PRINCIPALS) - {"customer"}  # the login; a customer token is still 401
ANY_STAFF: Final = frozenset(STAFF_ROLES)


def roles(*names: str) -> frozenset[str]:
    return frozenset({*names, "admin"})  # admin may do everything


# (method, path with parameters written as {}) -> who is allowed. One line per route.
MATRIX: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("POST", "/ops/v1/auth/token"): PUBLIC,
    ("POST", "/ops/v1/auth/logout"): ANY_STAFF,
    ("POST", "/ops/v1/staff"): roles("admin"),
    ("GET", "/ops/v1/staff/me"): ANY_STAFF,
    # Two-factor enrolment: every staff member, their own (staff without it may use only these).
    ("GET", "/ops/v1/me/totp"): ANY_STAFF,
    ("POST", "/ops/v1/me/totp"): ANY_STAFF,
    ("POST", "/ops/v1/me/totp/confirm"): ANY_STAFF,
    ("DELETE", "/ops/v1/me/totp"): ANY_STAFF,
    ("GET", "/ops/v1/customers"): ANY_STAFF,
    ("GET", "/ops/v1/customers/{}"): ANY_STAFF,
    ("GET", "/ops/v1/accounts/{}"): ANY_STAFF,
    ("PATCH", "/ops/v1/accounts/{}"): roles("operator"),
    ("POST", "/ops/v1/deposits"): roles("operator"),
    ("GET", "/ops/v1/transfers"): ANY_STAFF,
    ("GET", "/ops/v1/transfers/{}"): ANY_STAFF,
    ("POST", "/ops/v1/transfers/{}/approve"): roles("approver"),
    ("POST", "/ops/v1/transfers/{}/reject"): roles("approver"),
    ("POST", "/ops/v1/transfers/{}/reversals"): roles("operator"),
    ("GET", "/ops/v1/reversals"): ANY_STAFF,
    ("GET", "/ops/v1/reversals/{}"): ANY_STAFF,
    ("POST", "/ops/v1/reversals/{}/approve"): roles("approver"),
    ("POST", "/ops/v1/reversals/{}/reject"): roles("approver"),
    ("GET", "/ops/v1/fx/rates"): ANY_STAFF,
    ("GET", "/ops/v1/fx/rates/{}/{}"): ANY_STAFF,
    ("PUT", "/ops/v1/fx/rates/{}/{}"): roles("admin"),
    ("POST", "/ops/v1/reconciliation/runs"): roles("operator"),
    ("GET", "/ops/v1/reconciliation/runs"): ANY_STAFF,
    ("GET", "/ops/v1/reconciliation/runs/{}"): ANY_STAFF,
    ("POST", "/ops/v1/reconciliation/statements"): roles("operator"),
    ("GET", "/ops/v1/reconciliation/statements/{}"): ANY_STAFF,
    ("GET", "/ops/v1/accounts/{}/statement.csv"): ANY_STAFF,
    ("GET", "/ops/v1/audit-log"): roles("auditor"),
    ("GET", "/ops/v1/dead-letters"): ANY_STAFF,
    ("GET", "/ops/v1/standing-orders"): ANY_STAFF,
    ("GET", "/ops/v1/accounts"): ANY_STAFF,
    ("GET", "/ops/v1/outbox/parked"): ANY_STAFF,
    ("GET", "/ops/v1/outbox/relay"): ANY_STAFF,
    ("GET", "/ops/v1/retention"): ANY_STAFF,
    ("POST", "/ops/v1/temporal-codec/decode"): ANY_STAFF,
    ("POST", "/ops/v1/temporal-codec/encode"): ANY_STAFF,
    ("GET", "/ops/v1/limits/defaults"): roles("admin"),
    ("PUT", "/ops/v1/limits/defaults"): roles("admin"),
    ("GET", "/ops/v1/customers/{}/limits"): ANY_STAFF,
    ("PUT", "/ops/v1/customers/{}/limits"): roles("operator"),
    ("GET", "/ops/v1/risk/rules"): ANY_STAFF,
    ("PUT", "/ops/v1/risk/rules/{}"): roles("admin"),
}

_PARAM: Final = re.compile(r"\{[^}]+\}")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are plain entries of app.routes
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    found = {(m, c.path) for c in contexts if getattr(c, "path", None) for m in (getattr(c, "methods", None) or ())}
    return sorted(found)


def ops_routes() -> list[tuple[str, str]]:
    return [(m, p) for m, p in app_routes(create_app()) if p.startswith("/ops/v1/") and m != "HEAD"]


def shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def concrete(path: str) -> str:
    """The template with made-up values: fresh UUIDs (so each call's audit row is its own),
    currency codes where the route wants currencies."""

    def value(match: re.Match[str]) -> str:
        name = match.group(0)[1:-1]
        return {"base": "USD", "quote": "EUR", "name": "velocity"}.get(name, str(uuid.uuid4()))

    return _PARAM.sub(value, path)


OPS_ROUTES: Final = ops_routes()


def test_every_ops_route_has_a_matrix_entry() -> None:
    missing = [f"{m} {shape(p)}" for m, p in OPS_ROUTES if (m, shape(p)) not in MATRIX]
    assert not missing, f"routes without a line in MATRIX (decide who may call them): {missing}"


def test_route_enumeration_sees_everything_the_openapi_lists() -> None:
    """Guards the enumeration itself: if it missed included routers, the matrix would test nothing."""
    app = create_app()
    listed = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/ops/v1/")
        for method in item
        if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    }
    assert listed <= set(OPS_ROUTES)
    assert len(OPS_ROUTES) >= 20


@dataclass
class Principal:
    name: str
    token: str | None
    actor_id: str | None  # what the audit log should name


@pytest.fixture(scope="module")
def principals(sec: SecApi) -> Iterator[dict[str, Principal]]:
    with sec.client() as http:
        out: dict[str, Principal] = {}
        for role in STAFF_ROLES:
            token = sec.admin_token(http) if role == "admin" else sec.staff(http, role)
            me = http.get("/ops/v1/staff/me", headers=bearer(token)).json()
            out[role] = Principal(role, token, str(me["staff_id"]))
        customer = new_customer(sec, http)
        out["customer"] = Principal("customer", customer.token, customer.id)
        out["nobody"] = Principal("nobody", None, None)
        yield out


def call(sec: SecApi, http: httpx.Client, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": new_key(), "If-Match": '"1"'}
    if token is not None:
        headers |= bearer(token)
    if method in ("POST", "PUT", "PATCH"):
        return http.request(method, path, json={}, headers=headers)
    return http.request(method, path, headers=headers)


@pytest.mark.parametrize(("method", "template"), OPS_ROUTES, ids=[f"{m} {p}" for m, p in OPS_ROUTES])
def test_role_matrix(
    sec: SecApi, http: httpx.Client, principals: dict[str, Principal], method: str, template: str
) -> None:
    allowed = MATRIX.get((method, shape(template)))
    assert allowed is not None, f"{method} {template} has no line in MATRIX"
    is_logout = template.endswith("/auth/logout")
    denied: list[tuple[Principal, str]] = []
    wrong: list[str] = []
    for name in PRINCIPALS:
        principal = principals[name]
        token = principal.token
        if is_logout and name in STAFF_ROLES:
            # Logging out revokes the token: use a throwaway one of the same staff member.
            token = _fresh_token(sec, http, name)
        path = concrete(template)
        answer = call(sec, http, method, path, token)
        refused = answer.status_code in (401, 403)
        if name in ("customer", "nobody") and name not in allowed:
            # Unauthenticated in this realm: always 401, never 403 (docs/api.md).
            if answer.status_code != 401:
                wrong.append(f"{name}: expected 401, got {answer.status_code} {answer.text[:200]}")
        elif refused == (name in allowed):
            wrong.append(f"{name}: {'allowed' if name in allowed else 'refused'} expected, got {answer.status_code}")
        if refused:
            assert answer.headers.get("content-type", "").startswith("application/problem+json")
            denied.append((principal, f"{method} {path}"))
    assert not wrong, f"{method} {template}: " + "; ".join(wrong)

    # Every refusal is in the audit log, naming who was refused.
    for principal, target in denied:
        rows = sec.sql(
            "SELECT actor_realm, actor_id FROM audit_log WHERE action = 'access_denied' AND outcome = 'denied' "
            "AND target_id = %s",
            target,
        )
        expected_realm = {"customer": "customer", "nobody": "anonymous"}.get(principal.name, "staff")
        assert (expected_realm, principal.actor_id) in rows, f"no audit row for {principal.name} on {target}: {rows}"


def _fresh_token(sec: SecApi, http: httpx.Client, role: str) -> str:
    if role == "admin":
        return sec.admin_login(http)
    return sec.staff(http, role)


def test_staff_tokens_get_401_on_every_customer_route(
    sec: SecApi, http: httpx.Client, principals: dict[str, Principal]
) -> None:
    routes = [(m, p) for m, p in app_routes(create_app()) if p.startswith("/v1/") and m != "HEAD"]
    assert len(routes) >= 15
    for method, template in routes:
        answer = call(sec, http, method, concrete(template), principals["operator"].token)
        assert answer.status_code == 401, f"{method} {template}: {answer.status_code}"
