"""Transfer limits through HTTP: the ops API (defaults, overrides, If-Match, audit), the
refusal at initiation (422 limit_exceeded naming the limit and what is left), amounts given
back by transfers that end without posting, `GET /v1/limits`, and 20 concurrent transfers
against a daily limit: exactly as many pass as fit (DESIGN invariant 11)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, bearer
from tests.api.test_transfers import start


@pytest.fixture
def customer(api: Api, http: httpx.Client) -> dict[str, Any]:
    """A customer with 10,000.00 USD, a payee, an operator and the admin."""
    me, token = api.signup(http, "Lim Its")
    _, payee_token = api.signup(http, "Pay Ee")
    operator = api.staff(http, "operator")
    a = api.open_account(http, token)
    b = api.open_account(http, payee_token)
    api.deposit(http, operator, a, 1_000_000)
    return {
        "id": me["customer_id"],
        "token": token,
        "operator": operator,
        "admin": api.admin_token(http),
        "a": a,
        "b": b,
    }


def put_limits(http: httpx.Client, token: str, customer_id: str, limits: list[dict[str, Any]]) -> httpx.Response:
    path = f"/ops/v1/customers/{customer_id}/limits"
    etag = http.get(path, headers=bearer(token)).headers["ETag"]
    return http.put(path, json={"limits": limits}, headers=bearer(token) | {"If-Match": etag})


def test_customer_limits_need_if_match_and_are_audited(api: Api, http: httpx.Client, customer: dict[str, Any]) -> None:
    path = f"/ops/v1/customers/{customer['id']}/limits"
    r = http.get(path, headers=bearer(customer["operator"]))
    assert r.status_code == 200 and r.json() == {"limits": [], "version": 0, "updated_at": None, "updated_by": None}
    assert r.headers["ETag"] == '"0"'
    body = {"limits": [{"currency": "USD", "per_transfer_max_minor": 5000}]}
    assert http.put(path, json=body, headers=bearer(customer["operator"])).json()["code"] == "precondition_required"
    r = http.put(path, json=body, headers=bearer(customer["operator"]) | {"If-Match": '"0"'})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"1"' and r.json()["limits"][0]["per_transfer_max_minor"] == 5000
    stale = http.put(path, json=body, headers=bearer(customer["operator"]) | {"If-Match": '"0"'})
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict"
    # An auditor reads but may not change them; a float is refused like any amount.
    auditor = api.staff(http, "auditor")
    assert http.get(path, headers=bearer(auditor)).status_code == 200
    assert http.put(path, json=body, headers=bearer(auditor) | {"If-Match": '"1"'}).status_code == 403
    bad = {"limits": [{"currency": "USD", "daily_max_minor": 10.5}]}
    assert http.put(path, json=bad, headers=bearer(customer["operator"]) | {"If-Match": '"1"'}).status_code == 422
    twice = {"limits": [{"currency": "USD"}, {"currency": "USD"}]}
    r = http.put(path, json=twice, headers=bearer(customer["operator"]) | {"If-Match": '"1"'})
    assert r.status_code == 422 and r.json()["code"] == "invalid_limits"
    rows = api.sql(
        "SELECT actor_realm, before -> 'version', after -> 'version' FROM audit_log "
        "WHERE action = 'limits.set' AND target_id = %s",
        customer["id"],
    )
    assert rows == [("staff", 0, 1)]
    # A customer token is refused by the staff realm, and an unknown customer is 404.
    assert http.get(path, headers=bearer(customer["token"])).status_code == 401
    unknown = "/ops/v1/customers/00000000-0000-7000-8000-000000000000/limits"
    assert http.get(unknown, headers=bearer(customer["operator"])).status_code == 404


def test_defaults_are_for_admins(api: Api, http: httpx.Client, customer: dict[str, Any]) -> None:
    assert http.get("/ops/v1/limits/defaults", headers=bearer(customer["operator"])).status_code == 403
    r = http.get("/ops/v1/limits/defaults", headers=bearer(customer["admin"]))
    assert r.status_code == 200 and r.json()["version"] >= 1
    # Written back unchanged (other tests in this package share the defaults).
    same = {"limits": r.json()["limits"]}
    r2 = http.put(
        "/ops/v1/limits/defaults", json=same, headers=bearer(customer["admin"]) | {"If-Match": r.headers["ETag"]}
    )
    assert r2.status_code == 200 and r2.json()["version"] == r.json()["version"] + 1
    assert api.sql("SELECT count(*) FROM audit_log WHERE action = 'limits.set' AND target_id = 'default'")[0][0] >= 1


def test_per_transfer_and_hourly_refusals(api: Api, http: httpx.Client, customer: dict[str, Any]) -> None:
    r = put_limits(
        http,
        customer["operator"],
        customer["id"],
        [{"currency": "USD", "per_transfer_max_minor": 5000, "hourly_count_max": 2}],
    )
    assert r.status_code == 200, r.text
    over = start(http, customer["token"], customer["a"], customer["b"], 5001)
    assert over.status_code == 422, over.text
    body = over.json()
    assert body["code"] == "limit_exceeded" and body["limit"] == "per_transfer_max_minor"
    assert body["remaining_minor"] == 5000
    # At the limit passes; the refused one did not count.
    assert start(http, customer["token"], customer["a"], customer["b"], 5000).status_code == 201
    assert start(http, customer["token"], customer["a"], customer["b"], 100).status_code == 201
    third = start(http, customer["token"], customer["a"], customer["b"], 100)
    assert third.status_code == 422 and third.json()["limit"] == "hourly_count_max"
    assert third.json()["remaining_count"] == 0
    # Nothing was held for the refused ones.
    held = api.sql("SELECT held_minor FROM account_balances WHERE account_id = %s", customer["a"]["id"])[0][0]
    assert held == 5100


def test_twenty_concurrent_transfers_against_a_daily_limit(
    api: Api, http: httpx.Client, customer: dict[str, Any]
) -> None:
    """Daily limit 1,000 and 20 transfers of 70 at once: exactly 14 fit (980), 6 are refused."""
    assert (
        put_limits(
            http, customer["operator"], customer["id"], [{"currency": "USD", "daily_max_minor": 1000}]
        ).status_code
        == 200
    )

    def one(_: int) -> httpx.Response:
        with api.client() as c:
            return start(c, customer["token"], customer["a"], customer["b"], 70)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 14 + [422] * 6, [a.text for a in answers if a.status_code not in (201, 422)]
    refused = [a.json() for a in answers if a.status_code == 422]
    assert {(p["code"], p["limit"]) for p in refused} == {("limit_exceeded", "daily_max_minor")}
    assert {p["remaining_minor"] for p in refused} == {20}
    held = api.sql("SELECT held_minor FROM account_balances WHERE account_id = %s", customer["a"]["id"])[0][0]
    assert held == 980

    # A cancelled transfer gives its amount back: one more of 70 now fits, and not two.
    first = next(a.json() for a in answers if a.status_code == 201)
    r = http.post(f"/v1/transfers/{first['id']}/cancel", headers=bearer(customer["token"]))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert start(http, customer["token"], customer["a"], customer["b"], 70).status_code == 201
    again = start(http, customer["token"], customer["a"], customer["b"], 70)
    assert again.status_code == 422 and again.json()["remaining_minor"] == 20

    mine = http.get("/v1/limits", headers=bearer(customer["token"]))
    assert mine.status_code == 200, mine.text
    usd = next(item for item in mine.json()["limits"] if item["currency"] == "USD")
    assert usd["daily_max_minor"] == 1000 and usd["daily_used_minor"] == 980 and usd["daily_remaining_minor"] == 20
    assert usd["hourly_count_used"] == 14 and usd["hourly_remaining_count"] is None


def test_customer_entry_overrides_the_default_for_its_currency_only(
    api: Api, http: httpx.Client, customer: dict[str, Any]
) -> None:
    """Pure check of the effective limits: own entry first, then the default, per currency."""
    from risk import limits as risk_limits

    assert (
        put_limits(
            http, customer["operator"], customer["id"], [{"currency": "EUR", "per_transfer_max_minor": 1}]
        ).status_code
        == 200
    )
    import psycopg

    with psycopg.connect(api.pg_url) as conn:
        conn.execute(
            'UPDATE limit_sets SET limits = limits || \'[{"currency": "CHF", "per_transfer_max_minor": 7}]\'::jsonb '
            "WHERE scope = 'default' AND NOT limits @> '[{\"currency\": \"CHF\"}]'::jsonb"
        )
        eur = risk_limits.effective_limits(conn, customer["id"], "EUR")
        chf = risk_limits.effective_limits(conn, customer["id"], "CHF")
        conn.rollback()
    assert eur is not None and eur.per_transfer_max_minor == 1
    assert chf is not None and chf.per_transfer_max_minor == 7
