"""Transfers end to end through HTTP: a real workflow on a real Temporal server, real ledger."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, bearer, new_key
from tests.api.test_auth import problem


def balance(http: httpx.Client, token: str, account: dict[str, Any]) -> dict[str, Any]:
    r = http.get(f"/v1/accounts/{account['id']}/balance", headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def start(
    http: httpx.Client,
    token: str,
    source: dict[str, Any],
    destination: dict[str, Any],
    amount_minor: Any,
    currency: str | None = None,
    key: str | None = None,
) -> httpx.Response:
    body = {
        "source_account_id": source["id"],
        "destination_account_id": destination["id"],
        "amount_minor": amount_minor,
        "currency": currency or source["currency"],
        "description": "rent",
    }
    return http.post("/v1/transfers", json=body, headers=bearer(token) | {"Idempotency-Key": key or new_key()})


@pytest.fixture
def two_customers(api: Api, http: httpx.Client) -> dict[str, Any]:
    """Alice with 1000 USD (deposited by an operator), Bob with an empty USD account."""
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    deposit = api.deposit(http, operator, a, 1000)
    return {"alice": alice, "bob": bob, "operator": operator, "a": a, "b": b, "deposit": deposit}


def test_seed_scenario(api: Api, http: httpx.Client) -> None:
    """Two customers, a deposit of 1000, a transfer of 400 with its OTP: 600 and 400; the
    same deposit replayed with the same key changes nothing and answers byte for byte."""
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    key = new_key()
    deposit_body = {"account_id": a["id"], "amount_minor": 1000, "currency": "USD", "external_reference": "wire-1"}
    first = http.post("/ops/v1/deposits", json=deposit_body, headers=bearer(operator) | {"Idempotency-Key": key})
    assert first.status_code == 201, first.text

    r = start(http, alice, a, b, 400)
    assert r.status_code == 201, r.text
    transfer = r.json()
    assert transfer["status"] == "pending_otp"
    assert transfer["workflow_id"] == f"transfer-{transfer['id']}"
    assert uuid.UUID(transfer["id"]).version == 7
    assert transfer["otp"]["channel"] == "in_app" and transfer["otp"]["attempts_left"] == 5
    assert transfer["otp"]["expires_at"]
    assert (transfer["amount_minor"], transfer["currency"], transfer["legs"]) == (400, "USD", [])
    held = balance(http, alice, a)
    assert (held["ledger_minor"], held["held_minor"], held["available_minor"]) == (1000, 400, 600)

    code = api.otp_code(transfer["id"])
    confirmed = http.post(f"/v1/transfers/{transfer['id']}/otp", json={"code": code}, headers=bearer(alice))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] in ("processing", "posted")
    final = wait_status(http, alice, transfer["id"], "posted")
    assert sorted((leg["direction"], leg["amount_minor"]) for leg in final["legs"]) == [("credit", 400), ("debit", 400)]
    assert final["otp"] is None
    assert balance(http, alice, a)["ledger_minor"] == 600
    assert balance(http, alice, a)["available_minor"] == 600
    assert balance(http, bob, b)["ledger_minor"] == 400

    replay = http.post("/ops/v1/deposits", json=deposit_body, headers=bearer(operator) | {"Idempotency-Key": key})
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert balance(http, alice, a)["ledger_minor"] == 600


def wait_status(http: httpx.Client, token: str, transfer_id: str, status: str, timeout_s: float = 10) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        got = http.get(f"/v1/transfers/{transfer_id}", headers=bearer(token))
        assert got.status_code == 200, got.text
        if got.json()["status"] == status or time.monotonic() > deadline:
            assert got.json()["status"] == status, got.json()
            return dict(got.json())
        time.sleep(0.05)


def test_refusals_before_and_at_initiation(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    alice, a, b = c["alice"], c["a"], c["b"]
    problem(start(http, alice, a, a, 10), 422, "same_account")
    problem(start(http, alice, a, b, 0), 422, "invalid_amount")
    problem(start(http, alice, a, b, -3), 422, "invalid_amount")
    problem(start(http, alice, a, b, 10.0), 422, "invalid_amount")
    problem(start(http, alice, a, b, 10.5), 422, "invalid_amount")
    problem(start(http, alice, a, b, "10"), 422, "invalid_amount")
    problem(start(http, alice, a, b, 10, currency="EUR"), 422, "currency_mismatch")
    problem(start(http, alice, a, {"id": str(uuid.uuid4())}, 10), 404, "account_not_found")
    # Bob's account as the source: not Alice's, so it does not exist for her.
    problem(start(http, alice, b, a, 10), 404, "account_not_found")
    # The ledger's own refusal, decided by the workflow's first activity.
    problem(start(http, alice, a, b, 1001), 422, "insufficient_funds")
    # A frozen payee.
    eur_bob = api.open_account(http, c["bob"], "USD")
    ops = http.get(f"/ops/v1/accounts/{eur_bob['id']}", headers=bearer(c["operator"]))
    frozen = http.patch(
        f"/ops/v1/accounts/{eur_bob['id']}",
        json={"status": "frozen"},
        headers=bearer(c["operator"]) | {"If-Match": ops.headers["etag"]},
    )
    assert frozen.status_code == 200
    problem(start(http, alice, a, eur_bob, 10), 422, "account_frozen")
    # Missing Idempotency-Key.
    r = http.post(
        "/v1/transfers",
        json={"source_account_id": a["id"], "destination_account_id": b["id"], "amount_minor": 1, "currency": "USD"},
        headers=bearer(alice),
    )
    problem(r, 400, "idempotency_key_missing")
    # Nothing was held by any of these.
    assert balance(http, alice, a)["available_minor"] == 1000


def test_wrong_codes_then_lock(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    transfer = start(http, c["alice"], c["a"], c["b"], 100).json()
    code = api.otp_code(transfer["id"])
    wrong = "000000" if code != "000000" else "111111"
    url = f"/v1/transfers/{transfer['id']}/otp"
    for left in (4, 3, 2, 1):
        body = problem(http.post(url, json={"code": wrong}, headers=bearer(c["alice"])), 422, "invalid_otp")
        assert body["attempts_left"] == left
        assert wrong not in http.get("/metrics").text.split("ledgerflow_api_otp_failures_total")[1][:500]
    body = problem(http.post(url, json={"code": wrong}, headers=bearer(c["alice"])), 422, "invalid_otp")
    assert body["attempts_left"] == 0
    failed = wait_status(http, c["alice"], transfer["id"], "failed")
    assert failed["failure_reason"] == "otp_locked"
    # The hold is released; the right code is useless now.
    assert balance(http, c["alice"], c["a"])["available_minor"] == 1000
    problem(http.post(url, json={"code": code}, headers=bearer(c["alice"])), 409, "otp_not_pending")
    # Codes never reach logs of the API's answers or metric labels.
    metrics = http.get("/metrics").text
    assert 'ledgerflow_api_otp_failures_total{outcome="invalid"}' in metrics
    assert code not in metrics


def test_code_after_posting_is_not_pending(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    transfer = start(http, c["alice"], c["a"], c["b"], 100).json()
    code = api.otp_code(transfer["id"])
    url = f"/v1/transfers/{transfer['id']}/otp"
    assert http.post(url, json={"code": code}, headers=bearer(c["alice"])).status_code == 200
    wait_status(http, c["alice"], transfer["id"], "posted")
    problem(http.post(url, json={"code": code}, headers=bearer(c["alice"])), 409, "otp_not_pending")
    problem(http.post(f"/v1/transfers/{transfer['id']}/cancel", headers=bearer(c["alice"])), 409, "not_cancellable")


def test_cancel(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    transfer = start(http, c["alice"], c["a"], c["b"], 300).json()
    assert balance(http, c["alice"], c["a"])["available_minor"] == 700
    r = http.post(f"/v1/transfers/{transfer['id']}/cancel", headers=bearer(c["alice"]))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["otp"] is None
    assert balance(http, c["alice"], c["a"])["available_minor"] == 1000
    problem(http.post(f"/v1/transfers/{transfer['id']}/cancel", headers=bearer(c["alice"])), 409, "not_cancellable")
    problem(
        http.post(f"/v1/transfers/{transfer['id']}/otp", json={"code": "123456"}, headers=bearer(c["alice"])),
        409,
        "otp_not_pending",
    )


def test_other_customers_transfers_are_404(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    transfer = start(http, c["alice"], c["a"], c["b"], 100).json()
    tid = transfer["id"]
    # Bob is the payee, but the transfer is Alice's: it does not exist for him.
    problem(http.get(f"/v1/transfers/{tid}", headers=bearer(c["bob"])), 404, "transfer_not_found")
    problem(
        http.post(f"/v1/transfers/{tid}/otp", json={"code": "123456"}, headers=bearer(c["bob"])),
        404,
        "transfer_not_found",
    )
    problem(http.post(f"/v1/transfers/{tid}/cancel", headers=bearer(c["bob"])), 404, "transfer_not_found")
    assert http.get("/v1/transfers", headers=bearer(c["bob"])).json()["items"] == []
    problem(http.get(f"/v1/transfers/{uuid.uuid4()}", headers=bearer(c["alice"])), 404, "transfer_not_found")
    # Alice sees it, in lists too, filtered by status.
    mine = http.get("/v1/transfers", params={"status": "pending_otp"}, headers=bearer(c["alice"])).json()
    assert [t["id"] for t in mine["items"]] == [tid]
    assert mine["items"][0]["otp"]["attempts_left"] == 5
    assert http.get("/v1/transfers", params={"status": "posted"}, headers=bearer(c["alice"])).json()["items"] == []
    problem(http.get("/v1/transfers", params={"status": "nope"}, headers=bearer(c["alice"])), 422, "validation_error")


def test_transfer_pagination(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    ids = [start(http, c["alice"], c["a"], c["b"], 10).json()["id"] for _ in range(3)]
    first = http.get("/v1/transfers", params={"limit": 2}, headers=bearer(c["alice"])).json()
    second = http.get(
        "/v1/transfers", params={"limit": 2, "cursor": first["next_cursor"]}, headers=bearer(c["alice"])
    ).json()
    assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    problem(http.get("/v1/transfers", params={"cursor": "%%%"}, headers=bearer(c["alice"])), 422, "invalid_cursor")


def test_review_approve_and_reject(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    approver = api.staff(http, "approver")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    threshold = api.settings.review_threshold_minor["USD"]
    api.deposit(http, operator, a, threshold * 2)

    def to_review() -> dict[str, Any]:
        t = start(http, alice, a, b, threshold).json()
        r = http.post(f"/v1/transfers/{t['id']}/otp", json={"code": api.otp_code(t["id"])}, headers=bearer(alice))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "in_review"
        return dict(r.json())

    approved = to_review()
    problem(
        http.post(f"/ops/v1/transfers/{approved['id']}/approve", json={"reason": "ok"}, headers=bearer(operator)),
        403,
        "forbidden",
    )
    r = http.post(
        f"/ops/v1/transfers/{approved['id']}/approve", json={"reason": "known payee"}, headers=bearer(approver)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("processing", "posted")
    wait_status(http, alice, approved["id"], "posted")
    problem(
        http.post(f"/ops/v1/transfers/{approved['id']}/reject", json={"reason": "late"}, headers=bearer(approver)),
        409,
        "not_in_review",
    )

    rejected = to_review()
    r = http.post(f"/ops/v1/transfers/{rejected['id']}/reject", json={"reason": "suspicious"}, headers=bearer(approver))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    assert balance(http, bob, b)["ledger_minor"] == threshold
    assert balance(http, alice, a)["available_minor"] == threshold

    rows = api.sql(
        "SELECT action, before ->> 'status', after ->> 'status' FROM audit_log WHERE target_id IN (%s, %s) ORDER BY id",
        approved["id"],
        rejected["id"],
    )
    assert [r[0] for r in rows] == ["transfer.approve", "transfer.reject"]
    assert rows[1][1:] == ("in_review", "rejected")
    problem(
        http.post(f"/ops/v1/transfers/{uuid.uuid4()}/approve", json={}, headers=bearer(approver)),
        404,
        "transfer_not_found",
    )


def test_ops_transfer_detail(api: Api, http: httpx.Client, two_customers: dict[str, Any]) -> None:
    c = two_customers
    transfer = start(http, c["alice"], c["a"], c["b"], 250).json()
    http.post(
        f"/v1/transfers/{transfer['id']}/otp", json={"code": api.otp_code(transfer["id"])}, headers=bearer(c["alice"])
    )
    wait_status(http, c["alice"], transfer["id"], "posted")
    auditor = api.staff(http, "auditor")
    detail = http.get(f"/ops/v1/transfers/{transfer['id']}", headers=bearer(auditor))
    assert detail.status_code == 200, detail.text
    body = detail.json()
    types = [e["type"] for e in body["events"]]
    assert "transfer.initiated" in types and "transfer.posted" in types
    assert "published_at" in body["events"][0]
    s = api.settings
    # Through the ops portal, under the staff login (portal/temporal_ui.py).
    assert body["temporal_ui_url"] == (
        f"http://{s.host}:{s.api_port}/ops/temporal/namespaces/{s.temporal_namespace}/workflows/transfer-{transfer['id']}"
    )
    listed = http.get(
        "/ops/v1/transfers",
        params={"status": "posted", "customer_id": body["customer_id"]},
        headers=bearer(auditor),
    ).json()
    assert [t["id"] for t in listed["items"]] == [transfer["id"]]
    problem(http.get(f"/ops/v1/transfers/{uuid.uuid4()}", headers=bearer(auditor)), 404, "transfer_not_found")
    metrics = http.get("/metrics").text
    assert 'ledgerflow_api_transfers_total{status="pending_otp"}' in metrics
    assert "ledgerflow_http_request_seconds_bucket" in metrics


def test_fx_quote(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    r = http.get(
        "/v1/fx/quote",
        params={"source_currency": "USD", "destination_currency": "EUR", "amount_minor": 10000},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["source_amount_minor"] == 10000 and q["destination_amount_minor"] > 0 and q["indicative"] is True
    assert isinstance(q["rate"], str)
    unsupported: tuple[dict[str, str | int], ...] = (
        {"source_currency": "USD", "destination_currency": "USD", "amount_minor": 1},
        {"source_currency": "USD", "destination_currency": "ZZZ", "amount_minor": 1},
    )
    for params in unsupported:
        problem(http.get("/v1/fx/quote", params=params, headers=bearer(token)), 422, "unsupported_pair")
    problem(
        http.get(
            "/v1/fx/quote",
            params={"source_currency": "USD", "destination_currency": "EUR", "amount_minor": 0},
            headers=bearer(token),
        ),
        422,
        "invalid_amount",
    )


def test_notifications_inbox(api: Api, http: httpx.Client) -> None:
    customer, token = api.signup(http)
    _, other = api.signup(http)
    # The relay's notifier writes the inbox; here rows are put there the way it would.
    for n in range(3):
        api.sql(
            "INSERT INTO notifications (id, customer_id, channel, subject, body, created_at) "
            "VALUES (gen_random_uuid(), %s, 'in_app', %s, 'body', now() + make_interval(secs => %s))",
            customer["customer_id"],
            f"subject {n}",
            n,
        )
    first = http.get("/v1/notifications", params={"limit": 2}, headers=bearer(token)).json()
    assert [n["subject"] for n in first["items"]] == ["subject 2", "subject 1"]
    second = http.get(
        "/v1/notifications", params={"limit": 2, "cursor": first["next_cursor"]}, headers=bearer(token)
    ).json()
    assert [n["subject"] for n in second["items"]] == ["subject 0"] and second["next_cursor"] is None
    assert http.get("/v1/notifications", headers=bearer(other)).json()["items"] == []


def test_cross_currency_transfer(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    usd = api.open_account(http, alice, "USD")
    eur = api.open_account(http, bob, "EUR")
    api.deposit(http, operator, usd, 100_000)
    for currency, amount in (("USD", 10_000), ("EUR", 5_000)):  # source fixed, then destination fixed
        t = start(http, alice, usd, eur, amount, currency=currency).json()
        assert t["status"] == "pending_otp", t
        r = http.post(f"/v1/transfers/{t['id']}/otp", json={"code": api.otp_code(t["id"])}, headers=bearer(alice))
        assert r.status_code == 200, r.text
        posted = wait_status(http, alice, t["id"], "posted")
        fx = posted["fx"]
        assert fx is not None and (fx["source_currency"], fx["destination_currency"]) == ("USD", "EUR")
        assert isinstance(fx["rate"], str) and fx["quote_id"]
        if currency == "USD":
            assert posted["source_amount_minor"] == 10_000
        else:
            assert posted["destination_amount_minor"] == 5_000
        assert {leg["currency"] for leg in posted["legs"]} == {"USD", "EUR"}
    received = balance(http, bob, eur)["ledger_minor"]
    assert received > 5_000
