"""Realms, logins, tokens, roles and throttling, through HTTP."""

from __future__ import annotations

import hashlib
import uuid

import httpx

from tests.api.conftest import ADMIN_EMAIL, Api, bearer


def problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return dict(body)


def test_signup_login_me(api: Api, http: httpx.Client) -> None:
    email = f"Alice-{uuid.uuid4().hex[:8]}@Example.test"
    r = http.post("/v1/signup", json={"email": email, "password": "correct horse", "full_name": "Alice"})
    assert r.status_code == 201, r.text
    customer = r.json()
    assert customer["email"] == email and customer["full_name"] == "Alice"
    uuid.UUID(customer["customer_id"])
    # E-mails are unique case-insensitively.
    again = http.post("/v1/signup", json={"email": email.lower(), "password": "whatever1", "full_name": "A"})
    problem(again, 409, "email_taken")
    # The password is stored hashed (argon2id), never as given.
    stored = api.sql("SELECT password_hash FROM customers WHERE id = %s", customer["customer_id"])[0][0]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored

    token = api.login(http, "/v1", email.upper(), "correct horse")
    me = http.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["customer_id"] == customer["customer_id"]
    # Only the token's sha256 is stored.
    assert api.sql("SELECT count(*) FROM auth_tokens WHERE token_hash = %s", token)[0][0] == 0


def test_signup_validation(http: httpx.Client) -> None:
    body = problem(http.post("/v1/signup", json={"email": "not-an-email", "password": "x"}), 422, "validation_error")
    assert body["errors"]
    # The refused password is not echoed back.
    errors = body["errors"]
    assert isinstance(errors, list)
    assert "x" not in [e.get("input") for e in errors]


def test_wrong_password_and_unknown_user(api: Api, http: httpx.Client) -> None:
    customer, _ = api.signup(http)
    bad = http.post("/v1/auth/token", data={"username": customer["email"], "password": "wrong-password"})
    problem(bad, 401, "invalid_credentials")
    unknown = http.post("/v1/auth/token", data={"username": "nobody@example.test", "password": "wrong-password"})
    problem(unknown, 401, "invalid_credentials")


def test_missing_and_garbage_tokens(http: httpx.Client) -> None:
    problem(http.get("/v1/me"), 401, "unauthorized")
    problem(http.get("/v1/me", headers=bearer("garbage")), 401, "unauthorized")
    problem(http.get("/ops/v1/customers"), 401, "unauthorized")
    r = http.get("/ops/v1/customers", headers=bearer("garbage"))
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


def test_realms_refuse_each_others_tokens(api: Api, http: httpx.Client) -> None:
    _, customer_token = api.signup(http)
    staff_token = api.admin_token(http)
    # A customer token on every kind of /ops/v1 path: 401, even on the public login route.
    for method, path in [
        ("GET", "/ops/v1/customers"),
        ("GET", f"/ops/v1/accounts/{uuid.uuid4()}"),
        ("GET", "/ops/v1/transfers"),
        ("GET", "/ops/v1/audit-log"),
        ("POST", "/ops/v1/auth/token"),
    ]:
        problem(http.request(method, path, headers=bearer(customer_token)), 401, "unauthorized")
    # A staff token (even the admin's) on /v1 paths: 401.
    for method, path in [
        ("GET", "/v1/me"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/transfers"),
        ("GET", "/v1/notifications"),
        ("POST", "/v1/signup"),
    ]:
        problem(http.request(method, path, headers=bearer(staff_token)), 401, "unauthorized")
    # Both refusals are in the audit log as denials naming who tried.
    denied = api.sql(
        "SELECT actor_realm, detail ->> 'reason' FROM audit_log WHERE outcome = 'denied' AND action = 'access_denied' "
        "AND detail ->> 'reason' = 'wrong_realm' AND actor_email = %s",
        ADMIN_EMAIL,
    )
    assert denied and all(realm == "staff" for realm, _ in denied)


def test_logout_revokes_token(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    assert http.get("/v1/me", headers=bearer(token)).status_code == 200
    assert http.post("/v1/auth/logout", headers=bearer(token)).status_code == 204
    problem(http.get("/v1/me", headers=bearer(token)), 401, "unauthorized")


def test_expired_token_is_refused(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    api.sql("UPDATE auth_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = %s", token_hash)
    problem(http.get("/v1/me", headers=bearer(token)), 401, "unauthorized")


def test_roles_are_checked_on_staff_routes(api: Api, http: httpx.Client) -> None:
    operator = api.staff(http, "operator")
    approver = api.staff(http, "approver")
    auditor = api.staff(http, "auditor")
    new_staff = {"email": f"x-{uuid.uuid4().hex[:6]}@ledgerflow.test", "password": "long-enough", "role": "operator"}
    problem(http.post("/ops/v1/staff", json=new_staff, headers=bearer(operator)), 403, "forbidden")
    problem(http.get("/ops/v1/audit-log", headers=bearer(operator)), 403, "forbidden")
    problem(http.get("/ops/v1/audit-log", headers=bearer(approver)), 403, "forbidden")
    assert http.get("/ops/v1/audit-log", headers=bearer(auditor)).status_code == 200
    deposit = {"account_id": str(uuid.uuid4()), "amount_minor": 1, "currency": "USD", "external_reference": "x"}
    problem(
        http.post("/ops/v1/deposits", json=deposit, headers=bearer(auditor) | {"Idempotency-Key": "k"}),
        403,
        "forbidden",
    )
    problem(http.post(f"/ops/v1/transfers/{uuid.uuid4()}/approve", json={}, headers=bearer(operator)), 403, "forbidden")
    problem(
        http.put("/ops/v1/fx/rates/USD/EUR", json={"rate": "0.9", "spread_bps": 10}, headers=bearer(approver)),
        403,
        "forbidden",
    )
    # Every role may read.
    for token in (operator, approver, auditor):
        assert http.get("/ops/v1/customers", headers=bearer(token)).status_code == 200
    # The denials are audited with who and what was needed.
    rows = api.sql(
        "SELECT detail FROM audit_log WHERE action = 'access_denied' AND detail ->> 'reason' = 'missing_role' "
        "AND target_id = 'POST /ops/v1/staff' ORDER BY id DESC LIMIT 1"
    )
    assert rows and rows[0][0]["role"] == "operator" and rows[0][0]["needs"] == ["admin"]


def test_staff_creation_is_admin_only_and_unique(api: Api, http: httpx.Client) -> None:
    admin = api.admin_token(http)
    body = {"email": f"op-{uuid.uuid4().hex[:6]}@ledgerflow.test", "password": "long-enough", "role": "operator"}
    created = http.post("/ops/v1/staff", json=body, headers=bearer(admin))
    assert created.status_code == 201 and created.json()["role"] == "operator"
    assert "password" not in created.text
    problem(http.post("/ops/v1/staff", json=body, headers=bearer(admin)), 409, "email_taken")
    problem(http.post("/ops/v1/staff", json=body | {"role": "root"}, headers=bearer(admin)), 422, "validation_error")
    row = api.sql(
        "SELECT actor_email, after ->> 'email' FROM audit_log WHERE action = 'staff.create' ORDER BY id DESC LIMIT 1"
    )
    assert row == [(ADMIN_EMAIL, body["email"])]


def test_login_throttling_per_username(api: Api, http: httpx.Client) -> None:
    customer, _ = api.signup(http)
    email = customer["email"]
    for _ in range(10):
        problem(
            http.post("/v1/auth/token", data={"username": email, "password": "nope-nope"}), 401, "invalid_credentials"
        )
    # The window is full: even a right password is refused now, with Retry-After.
    r = http.post("/v1/auth/token", data={"username": email, "password": "nope-nope"})
    problem(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) > 0
    # Other users are not affected.
    other, _ = api.signup(http)
    assert other["email"] != email
    # Staff logins are throttled in their own realm and audited either way.
    for _ in range(10):
        http.post("/ops/v1/auth/token", data={"username": "ghost@ledgerflow.test", "password": "nope-nope"})
    problem(
        http.post("/ops/v1/auth/token", data={"username": "ghost@ledgerflow.test", "password": "nope-nope"}),
        429,
        "too_many_attempts",
    )
    reasons = api.sql(
        "SELECT detail ->> 'reason' FROM audit_log WHERE action = 'staff.login' AND actor_email = %s",
        "ghost@ledgerflow.test",
    )
    assert ("throttled",) in reasons and ("invalid_credentials",) in reasons


def test_staff_login_is_audited(api: Api, http: httpx.Client) -> None:
    before = api.sql("SELECT count(*) FROM audit_log WHERE action = 'staff.login' AND outcome = 'ok'")[0][0]
    api.admin_login(http)
    after = api.sql("SELECT count(*) FROM audit_log WHERE action = 'staff.login' AND outcome = 'ok'")[0][0]
    assert after == before + 1
