"""Strong authentication (docs/api.md "Strong authentication"): TOTP with pyotp in both realms,
through the real API and PostgreSQL."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest

from config.settings import get_settings
from mfa import codes
from stack.service import free_port
from tests.api.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, ApiServer, bearer
from tests.totp_auth import Authenticator, enrol, new_staff


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = dict(r.json())
    assert body["code"] == code, body
    return body


def customer(api: Api, http: httpx.Client) -> tuple[str, str, str]:
    """(email, password, token) of a new customer."""
    email = f"totp-{uuid.uuid4().hex[:10]}@example.test"
    password = "correct horse battery"
    r = http.post("/v1/signup", json={"email": email, "password": password, "full_name": "Tot P"})
    assert r.status_code == 201, r.text
    return email, password, api.login(http, "/v1", email, password)


def token_form(email: str, password: str, totp: str | None = None) -> dict[str, str]:
    return {"username": email, "password": password} | ({"totp": totp} if totp is not None else {})


def audit_actions(api: Api, email: str) -> list[tuple[str, str, Any]]:
    return [
        (str(a), str(o), d)
        for a, o, d in api.sql(
            "SELECT action, outcome, detail FROM audit_log WHERE actor_email = %s ORDER BY id", email
        )
    ]


def test_enrol_confirm_and_login_with_a_code(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    assert http.get("/v1/me/totp", headers=bearer(token)).json() == {
        "enabled": False,
        "pending": False,
        "required": False,
        "recovery_codes_left": 0,
    }
    # Optional for customers: without it, the password alone still signs in.
    assert http.post("/v1/auth/token", data=token_form(email, password)).status_code == 200

    r = http.post("/v1/me/totp", headers=bearer(token))
    assert r.status_code == 201, r.text
    secret, uri = r.json()["secret"], r.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "issuer=Ledgerflow" in uri
    assert http.get("/v1/me/totp", headers=bearer(token)).json()["pending"] is True
    # Pending is not enabled: the password alone still works until the first code confirms it.
    assert http.post("/v1/auth/token", data=token_form(email, password)).status_code == 200

    totp = pyotp.TOTP(secret)
    wrong = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    problem(http.post("/v1/me/totp/confirm", json={"code": wrong}, headers=bearer(token)), 422, "invalid_totp")
    first = totp.now()
    r = http.post("/v1/me/totp/confirm", json={"code": first}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    recovery = r.json()["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    problem(http.post("/v1/me/totp", headers=bearer(token)), 409, "totp_already_enabled")
    assert http.get("/v1/me/totp", headers=bearer(token)).json()["recovery_codes_left"] == 10

    # Now the login needs the second factor.
    problem(http.post("/v1/auth/token", data=token_form(email, password)), 401, "mfa_required")
    problem(http.post("/v1/auth/token", data=token_form(email, password, wrong)), 401, "invalid_credentials")
    # The confirmation spent its step: the same code again is a reused step.
    problem(http.post("/v1/auth/token", data=token_form(email, password, first)), 401, "invalid_credentials")
    # A wrong password with the right code says the same, and spends nothing.
    device = Authenticator.of(secret)
    device.mark_used(codes.step_at(datetime.now(UTC)))
    step = device.next_step()
    good = codes.code_at(secret, step)
    problem(http.post("/v1/auth/token", data=token_form(email, "wrong-password", good)), 401, "invalid_credentials")
    r = http.post("/v1/auth/token", data=token_form(email, password, good))
    assert r.status_code == 200, r.text
    assert http.get("/v1/accounts", headers=bearer(r.json()["access_token"])).status_code == 200
    # The same code (the same step) a second time: refused, whatever the timing.
    problem(http.post("/v1/auth/token", data=token_form(email, password, good)), 401, "invalid_credentials")


def test_a_step_is_accepted_once_even_concurrently(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    enrolled = enrol(http, "/v1", token)
    code = enrolled.device.code()
    answers: list[int | str] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        # A long timeout: the logins queue on the username's lock, each verifying argon2, and a
        # loaded machine is slow at that (this test is about the answers, not their speed).
        with httpx.Client(base_url=api.base_url, timeout=180) as client:
            start.wait()
            try:
                answers.append(client.post("/v1/auth/token", data=token_form(email, password, code)).status_code)
            except httpx.HTTPError as err:
                answers.append(type(err).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers, key=str) == [200] + [401] * 5


def test_recovery_code_works_once(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    enrolled = enrol(http, "/v1", token)
    code = enrolled.recovery_codes[3]
    # Typed in capitals without the dashes: still the same code.
    r = http.post("/v1/auth/token", data=token_form(email, password, code.upper().replace("-", "")))
    assert r.status_code == 200, r.text
    problem(http.post("/v1/auth/token", data=token_form(email, password, code)), 401, "invalid_credentials")
    problem(
        http.post("/v1/auth/token", data=token_form(email, password, "aaaa-bbbb-cccc-dddd")), 401, "invalid_credentials"
    )
    assert http.get("/v1/me/totp", headers=bearer(token)).json()["recovery_codes_left"] == 9
    actions = audit_actions(api, email)
    used = [d for a, _, d in actions if a == "mfa.recovery_code_used"]
    assert used == [{"context": "login", "left": 9}]
    failed = [d for a, o, d in actions if a == "customer.login" and o == "denied"]
    assert {"reason": "invalid_second_factor"} in failed


def test_disable_needs_a_code(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    problem(
        http.request("DELETE", "/v1/me/totp", json={"code": "123456"}, headers=bearer(token)), 409, "totp_not_enabled"
    )
    enrolled = enrol(http, "/v1", token)
    problem(http.request("DELETE", "/v1/me/totp", headers=bearer(token)), 422, "validation_error")
    problem(http.request("DELETE", "/v1/me/totp", json={"code": "000000"}, headers=bearer(token)), 422, "invalid_totp")
    assert http.get("/v1/me/totp", headers=bearer(token)).json()["enabled"] is True
    r = http.request("DELETE", "/v1/me/totp", json={"code": enrolled.device.code()}, headers=bearer(token))
    assert r.status_code == 204, r.text
    assert http.get("/v1/me/totp", headers=bearer(token)).json()["enabled"] is False
    # Off again: the password alone signs in, and the recovery codes are gone with the secret.
    assert http.post("/v1/auth/token", data=token_form(email, password)).status_code == 200
    assert api.sql(
        "SELECT count(*) FROM totp_recovery_codes tr JOIN customers c ON c.id = tr.principal_id WHERE c.email = %s",
        email,
    ) == [(0,)]
    actions = [a for a, _, _ in audit_actions(api, email) if a.startswith("mfa.")]
    assert actions == ["mfa.enrolment_started", "mfa.enabled", "mfa.failed", "mfa.disabled"]


def test_failed_second_factors_are_throttled_like_passwords(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    enrolled = enrol(http, "/v1", token)
    for _ in range(10):
        problem(http.post("/v1/auth/token", data=token_form(email, password, "999999x")), 401, "invalid_credentials")
    # The window is full: even the right code and password are refused now.
    r = http.post("/v1/auth/token", data=token_form(email, password, enrolled.device.code()))
    problem(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) > 0
    api.sql("DELETE FROM login_failures WHERE username = %s", email)


def test_secrets_are_not_in_clear_in_any_table(api: Api, http: httpx.Client) -> None:
    email, password, token = customer(api, http)
    enrolled = enrol(http, "/v1", token)
    secret = codes.secret_of_uri(enrolled.otpauth_uri)
    code = enrolled.device.code()
    assert http.post("/v1/auth/token", data=token_form(email, password, code)).status_code == 200
    http.post("/v1/auth/token", data=token_form(email, password, enrolled.recovery_codes[0]))
    sealed = api.sql(
        "SELECT secret_sealed FROM totp_credentials t JOIN customers c ON c.id = t.principal_id WHERE c.email = %s",
        email,
    )[0][0]
    assert sealed.startswith("lfs1.") and secret not in sealed
    # No table holds the secret, a recovery code (with or without dashes) or the code sent.
    needles = [
        secret,
        secret.lower(),
        code,
        *enrolled.recovery_codes,
        *(c.replace("-", "") for c in enrolled.recovery_codes),
    ]
    tables = [r[0] for r in api.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    for table in tables:
        dump = "\n".join(str(r[0]) for r in api.sql(f'SELECT t::text FROM "{table}" t'))
        found = [n for n in needles if n != code and n in dump]
        # A six-digit code could occur by chance inside an id or an amount: only as a whole word.
        if re.search(rf"(?<![0-9A-Za-z.-]){code}(?![0-9A-Za-z])", dump):
            found.append(code)
        assert found == [], (table, found)


def test_staff_not_enrolled_may_only_enrol(api: Api, http: httpx.Client) -> None:
    admin = api.admin_token(http)
    email = f"newbie-{uuid.uuid4().hex[:8]}@ledgerflow.test"
    r = http.post(
        "/ops/v1/staff", json={"email": email, "password": "long-enough-pw", "role": "admin"}, headers=bearer(admin)
    )
    assert r.status_code == 201, r.text
    token = api.login(http, "/ops/v1", email, "long-enough-pw")
    allowed = {
        ("POST", "/ops/v1/auth/token"),
        ("POST", "/ops/v1/auth/logout"),
        ("GET", "/ops/v1/staff/me"),
        ("GET", "/ops/v1/me/totp"),
        ("POST", "/ops/v1/me/totp"),
        ("POST", "/ops/v1/me/totp/confirm"),
        ("DELETE", "/ops/v1/me/totp"),
    }
    spec = http.get("/openapi.json").json()
    checked = 0
    for path, item in spec["paths"].items():
        if not path.startswith("/ops/v1/"):
            continue
        for method in item:
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or (method.upper(), path) in allowed:
                continue
            concrete = path
            for name in [p["name"] for p in item[method].get("parameters", []) if p["in"] == "path"]:
                concrete = concrete.replace("{" + name + "}", str(uuid.uuid4()) if "id" in name else "USD")
            r = http.request(
                method.upper(), concrete, headers=bearer(token) | {"Idempotency-Key": str(uuid.uuid4())}, json={}
            )
            problem(r, 403, "mfa_enrolment_required")
            checked += 1
    assert checked >= 20
    assert http.get("/ops/v1/staff/me", headers=bearer(token)).json()["email"] == email
    denials = api.sql(
        "SELECT count(*) FROM audit_log WHERE actor_email = %s AND detail ->> 'reason' = 'mfa_enrolment_required'",
        email,
    )
    assert denials[0][0] == checked

    # Enrolled: the same token now works, and the next login needs a code.
    enrolled = enrol(http, "/ops/v1", token)
    assert http.get("/ops/v1/transfers", headers=bearer(token)).status_code == 200
    problem(http.post("/ops/v1/auth/token", data=token_form(email, "long-enough-pw")), 401, "mfa_required")
    staff_token = api.login(http, "/ops/v1", email, "long-enough-pw", enrolled.device)
    assert http.get("/ops/v1/customers", headers=bearer(staff_token)).status_code == 200
    # Disabled again: back to enrolment only.
    r = http.request(
        "DELETE", "/ops/v1/me/totp", json={"code": enrolled.recovery_codes[0]}, headers=bearer(staff_token)
    )
    assert r.status_code == 204, r.text
    problem(http.get("/ops/v1/transfers", headers=bearer(staff_token)), 403, "mfa_enrolment_required")


def test_dev_admin_is_enrolled_by_the_seed(api: Api, http: httpx.Client) -> None:
    path = api.settings.home.resolve() / "secrets" / "dev-admin-totp"
    assert path.read_text().strip() == api.admin_totp_uri
    assert path.stat().st_mode & 0o777 == 0o600
    problem(http.post("/ops/v1/auth/token", data=token_form(ADMIN_EMAIL, ADMIN_PASSWORD)), 401, "mfa_required")
    token = api.admin_login(http)
    assert http.get("/ops/v1/me/totp", headers=bearer(token)).json()["enabled"] is True
    # Seeding again keeps the enabled secret (and rewrites the file from it).
    from api.seed import seed_dev

    assert seed_dev(api.database_url, api.settings) == api.admin_totp_uri
    staff = new_staff(http, token, "auditor")
    assert http.get("/ops/v1/audit-log", headers=staff.auth).status_code == 200


def test_staff_logins_with_codes_are_audited_without_the_code(api: Api, http: httpx.Client) -> None:
    staff = new_staff(http, api.admin_token(http), "operator")
    code = staff.device.code()
    problem(
        http.post("/ops/v1/auth/token", data=token_form(staff.email, staff.password, "12345")),
        401,
        "invalid_credentials",
    )
    assert http.post("/ops/v1/auth/token", data=token_form(staff.email, staff.password, code)).status_code == 200
    rows = api.sql("SELECT row_to_json(a)::text FROM audit_log a WHERE actor_email = %s", staff.email)
    text = "\n".join(r[0] for r in rows)
    actions = api.sql(
        "SELECT action, outcome, detail ->> 'reason' FROM audit_log WHERE actor_email = %s ORDER BY id", staff.email
    )
    assert ("mfa.enabled", "ok", None) in actions
    assert ("staff.login", "denied", "invalid_second_factor") in actions
    assert code not in text.replace(staff.id, "") and "12345" not in text.replace(staff.id, "")
    assert not any(c in text for c in staff.recovery_codes)


@pytest.fixture
def mandatory(api: Api) -> Iterator[str]:
    """A second API process on the same database with LEDGERFLOW_CUSTOMER_MFA=required."""
    s = api.settings
    env = {
        "LEDGERFLOW_HOME": str(s.home),
        "LEDGERFLOW_SEAL_KEYS": s.seal_keys.get_secret_value(),
        "LEDGERFLOW_DATABASE_URL": api.database_url,
        "LEDGERFLOW_TEMPORAL_ADDRESS": s.temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": s.temporal_task_queue,
        "LEDGERFLOW_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "LEDGERFLOW_OTP_KEY": s.otp_key.get_secret_value(),
        "LEDGERFLOW_PAYLOAD_KEYS": s.payload_keys.get_secret_value(),
        "LEDGERFLOW_CUSTOMER_MFA": "required",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        server = ApiServer(free_port())
        server.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_customer_mfa_required_mode(api: Api, mandatory: str) -> None:
    with httpx.Client(base_url=mandatory, timeout=30) as http:
        email, password, token = customer(api, http)
        problem(http.get("/v1/accounts", headers=bearer(token)), 403, "mfa_enrolment_required")
        problem(
            http.post("/v1/accounts", json={"currency": "USD"}, headers=bearer(token)), 403, "mfa_enrolment_required"
        )
        assert http.get("/v1/me", headers=bearer(token)).status_code == 200
        assert http.get("/v1/me/totp", headers=bearer(token)).json()["required"] is True
        enrolled = enrol(http, "/v1", token)
        assert http.get("/v1/accounts", headers=bearer(token)).status_code == 200
        problem(http.post("/v1/auth/token", data=token_form(email, password)), 401, "mfa_required")
        assert api.login(http, "/v1", email, password, enrolled.device)
