"""Account numbers through HTTP: shown on every account, looked up by the initials only, and
accepted by POST /v1/transfers (a mistyped number refused by its check digits)."""

from __future__ import annotations

from typing import Any

import httpx

from ledger import account_numbers
from tests.api.conftest import Api, bearer, new_key
from tests.api.test_auth import problem


def typo(number: str) -> str:
    """The number with its last digit changed (a single-digit typing mistake)."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def transfer(http: httpx.Client, token: str, body: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/transfers", json=body, headers=bearer(token) | {"Idempotency-Key": new_key()})


def test_accounts_carry_numbers_and_lookup_gives_initials(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice Maria Example")
    _, bob = api.signup(http, "Bob")
    a = api.open_account(http, alice)
    assert account_numbers.is_valid(a["account_number"])
    listed = http.get("/v1/accounts", headers=bearer(alice)).json()["items"]
    assert [x["account_number"] for x in listed] == [a["account_number"]]

    spaced = account_numbers.grouped(a["account_number"]).lower()
    r = http.get("/v1/accounts/lookup", params={"account_number": spaced}, headers=bearer(bob))
    assert r.status_code == 200, r.text
    assert r.json() == {"account_number": a["account_number"], "holder_name_hint": "A. M. E."}

    problem(
        http.get("/v1/accounts/lookup", params={"account_number": typo(a["account_number"])}, headers=bearer(bob)),
        422,
        "invalid_account_number",
    )
    unknown = account_numbers.make("9999" + "0" * 12)
    problem(
        http.get("/v1/accounts/lookup", params={"account_number": unknown}, headers=bearer(bob)),
        404,
        "account_not_found",
    )
    assert http.get("/v1/accounts/lookup", params={"account_number": spaced}).status_code == 401


def test_transfer_by_account_number(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    api.deposit(http, operator, a, 1000)
    base = {"source_account_id": a["id"], "amount_minor": 100, "currency": "USD"}

    # Exactly one destination.
    problem(transfer(http, alice, base), 422, "invalid_destination")
    both = base | {"destination_account_id": b["id"], "destination_account_number": b["account_number"]}
    problem(transfer(http, alice, both), 422, "invalid_destination")
    # A typo is caught by the check digits, before any lookup; an unknown number is 404.
    problem(
        transfer(http, alice, base | {"destination_account_number": typo(b["account_number"])}),
        422,
        "invalid_account_number",
    )
    unknown = account_numbers.make("9999" + "0" * 12)
    problem(transfer(http, alice, base | {"destination_account_number": unknown}), 404, "account_not_found")
    problem(transfer(http, alice, base | {"destination_account_number": a["account_number"]}), 422, "same_account")

    r = transfer(http, alice, base | {"destination_account_number": account_numbers.grouped(b["account_number"])})
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["status"], t["destination_account_id"], t["sca_exemption"]) == ("pending_otp", b["id"], None)
    assert t["otp"] is not None
    # The OTP message names the payee by its number, in fours.
    rows = api.sql(
        "SELECT payload -> 'data' ->> 'body' FROM outbox WHERE type = 'notification.requested' AND key = %s", t["id"]
    )
    assert account_numbers.grouped(b["account_number"]) in rows[0][0]


def test_staff_find_an_account_by_number(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    a = api.open_account(http, alice)
    staff = api.staff(http, "auditor")
    spaced = account_numbers.grouped(a["account_number"])
    r = http.get("/ops/v1/accounts", params={"account_number": spaced}, headers=bearer(staff))
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["account_number"]) == (a["id"], a["account_number"])
    assert r.headers["etag"] == f'"{a["version"]}"'
    problem(
        http.get("/ops/v1/accounts", params={"account_number": typo(a["account_number"])}, headers=bearer(staff)),
        422,
        "invalid_account_number",
    )
    assert http.get("/ops/v1/accounts", params={"account_number": spaced}, headers=bearer(alice)).status_code == 401
