"""Trusted payees (PSD2 RTS Art. 13) through HTTP, against the real stack: the OTP that confirms
a payee (5 tries, TTL, single use, bound to the number and the name), and transfers to a trusted
payee that skip the OTP, until the payee is deleted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ledger import account_numbers
from tests.api.conftest import Api, bearer, new_key
from tests.api.test_account_numbers import typo
from tests.api.test_auth import problem
from tests.api.test_transfers import wait_status


def add_payee(http: httpx.Client, token: str, number: str, name: str = "Bob Builder") -> httpx.Response:
    return http.post("/v1/payees", json={"account_number": number, "name": name}, headers=bearer(token))


def confirm(http: httpx.Client, token: str, payee_id: str, code: str) -> httpx.Response:
    return http.post(f"/v1/payees/{payee_id}/otp", json={"code": code}, headers=bearer(token))


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def trusted_payee(api: Api, http: httpx.Client, token: str, account: dict[str, Any]) -> dict[str, Any]:
    r = add_payee(http, token, account["account_number"])
    assert r.status_code == 201, r.text
    ok = confirm(http, token, r.json()["id"], api.otp_code(r.json()["id"]))
    assert ok.status_code == 200, ok.text
    return dict(ok.json())


def transfer(http: httpx.Client, token: str, source: dict[str, Any], amount_minor: int, **to: str) -> httpx.Response:
    body = {"source_account_id": source["id"], "amount_minor": amount_minor, "currency": source["currency"], **to}
    return http.post("/v1/transfers", json=body, headers=bearer(token) | {"Idempotency-Key": new_key()})


@pytest.fixture
def people(api: Api, http: httpx.Client) -> dict[str, Any]:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    api.deposit(http, operator, a, 5_000_000)
    return {"alice": alice, "bob": bob, "a": a, "b": b}


def test_add_and_confirm_a_payee(api: Api, http: httpx.Client, people: dict[str, Any]) -> None:
    alice, b = people["alice"], people["b"]
    problem(
        add_payee(http, alice, typo(b["account_number"])),
        422,
        "invalid_account_number",
    )
    problem(add_payee(http, alice, account_numbers.make("9999" + "0" * 12)), 404, "account_not_found")
    problem(add_payee(http, alice, b["account_number"], name="bad\x1fname"), 422, "validation_error")

    r = add_payee(http, alice, account_numbers.grouped(b["account_number"]))
    assert r.status_code == 201, r.text
    payee = r.json()
    assert (payee["status"], payee["account_number"], payee["name"]) == (
        "pending_otp",
        b["account_number"],
        "Bob Builder",
    )
    # The message names the payee and its number, and carries the code.
    [(body,)] = api.sql(
        "SELECT payload -> 'data' ->> 'body' FROM outbox WHERE type = 'notification.requested' AND key = %s",
        payee["id"],
    )
    assert "Bob Builder" in body and account_numbers.grouped(b["account_number"]) in body
    code = api.otp_code(payee["id"])

    # Another customer cannot see or confirm it.
    problem(confirm(http, people["bob"], payee["id"], code), 404, "payee_not_found")
    bad = problem(confirm(http, alice, payee["id"], wrong(code)), 422, "invalid_otp")
    assert bad["attempts_left"] == 4
    ok = confirm(http, alice, payee["id"], code)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "trusted"
    # Single use: the same code again is refused.
    problem(confirm(http, alice, payee["id"], code), 409, "otp_not_pending")
    listed = http.get("/v1/payees", headers=bearer(alice)).json()["items"]
    assert [(p["id"], p["status"]) for p in listed] == [(payee["id"], "trusted")]
    assert http.get("/v1/payees", headers=bearer(people["bob"])).json()["items"] == []


def test_five_wrong_codes_lock_the_payee(api: Api, http: httpx.Client, people: dict[str, Any]) -> None:
    alice, b = people["alice"], people["b"]
    payee = add_payee(http, alice, b["account_number"]).json()
    code = api.otp_code(payee["id"])
    for left in (4, 3, 2, 1, 0):
        assert problem(confirm(http, alice, payee["id"], wrong(code)), 422, "invalid_otp")["attempts_left"] == left
    problem(confirm(http, alice, payee["id"], code), 409, "otp_not_pending")
    assert http.get(f"/v1/payees/{payee['id']}", headers=bearer(alice)).json()["status"] == "pending_otp"


def test_an_expired_code_is_refused(api: Api, http: httpx.Client, people: dict[str, Any]) -> None:
    alice, b = people["alice"], people["b"]
    payee = add_payee(http, alice, b["account_number"]).json()
    code = api.otp_code(payee["id"])
    # Its TTL has run out (moved, not waited for).
    api.sql("UPDATE otp_challenges SET expires_at = now() - interval '1 second' WHERE transfer_id = %s", payee["id"])
    problem(confirm(http, alice, payee["id"], code), 409, "otp_not_pending")


@pytest.mark.parametrize("column", ["name", "account_number"])
def test_the_code_is_bound_to_number_and_name(
    api: Api, http: httpx.Client, people: dict[str, Any], column: str
) -> None:
    alice, b = people["alice"], people["b"]
    payee = add_payee(http, alice, b["account_number"]).json()
    code = api.otp_code(payee["id"])
    # The payee's number or name changed behind the code's back: the code authorises neither.
    other = account_numbers.make("9999" + "0" * 12) if column == "account_number" else "Mallory"
    api.sql(f"UPDATE payees SET {column} = %s WHERE id = %s", other, payee["id"])
    problem(confirm(http, alice, payee["id"], code), 422, "invalid_otp")


def test_trusted_payee_transfers_skip_the_otp_until_deleted(
    api: Api, http: httpx.Client, people: dict[str, Any]
) -> None:
    alice, a, b = people["alice"], people["a"], people["b"]
    pending = add_payee(http, alice, b["account_number"]).json()
    problem(transfer(http, alice, a, 100, payee_id=pending["id"]), 422, "payee_not_trusted")
    payee = trusted_payee(api, http, alice, b)

    r = transfer(http, alice, a, 100, payee_id=payee["id"])
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["status"] in ("processing", "posted"), t
    assert (t["otp"], t["sca_exemption"], t["payee_id"]) == (None, "trusted_payee", payee["id"])
    assert wait_status(http, alice, t["id"], "posted")["sca_exemption"] == "trusted_payee"
    assert api.sql("SELECT count(*) FROM otp_challenges WHERE transfer_id = %s", t["id"]) == [(0,)]
    # By number or id to the same account: the same payee, the same exemption.
    by_number = transfer(http, alice, a, 100, destination_account_number=b["account_number"]).json()
    assert (by_number["otp"], by_number["sca_exemption"]) == (None, "trusted_payee")
    # Limits and review still apply: at the review threshold it waits for ops.
    big = transfer(http, alice, a, 1_000_000, payee_id=payee["id"]).json()
    assert (big["status"], big["otp"], big["sca_exemption"]) == ("in_review", None, "trusted_payee")

    assert http.delete(f"/v1/payees/{payee['id']}", headers=bearer(alice)).status_code == 204
    assert http.get("/v1/payees", headers=bearer(alice)).json()["items"] == [{k: pending[k] for k in pending}]
    problem(transfer(http, alice, a, 100, payee_id=payee["id"]), 404, "payee_not_found")
    after = transfer(http, alice, a, 100, destination_account_number=b["account_number"]).json()
    assert (after["status"], after["sca_exemption"]) == ("pending_otp", None)
    assert after["otp"]["attempts_left"] == 5
    problem(http.delete(f"/v1/payees/{payee['id']}", headers=bearer(alice)), 404, "payee_not_found")
