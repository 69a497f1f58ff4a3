"""Customer accounts: open, list, read with ETag, balances (now and as of), entries, isolation."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from tests.api.conftest import Api, bearer
from tests.api.test_auth import problem


def test_open_list_get_account(api: Api, http: httpx.Client) -> None:
    customer, token = api.signup(http)
    r = http.post("/v1/accounts", json={"currency": "EUR", "label": "savings"}, headers=bearer(token))
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["customer_id"] == customer["customer_id"]
    assert account["currency"] == "EUR" and account["label"] == "savings" and account["status"] == "active"
    assert account["balance"] == {
        "account_id": account["id"],
        "currency": "EUR",
        "ledger_minor": 0,
        "available_minor": 0,
        "held_minor": 0,
        "as_of": account["balance"]["as_of"],
    }
    assert r.headers["etag"] == f'"{account["version"]}"'

    got = http.get(f"/v1/accounts/{account['id']}", headers=bearer(token))
    assert got.status_code == 200 and got.json()["id"] == account["id"]
    assert got.headers["etag"] == f'"{account["version"]}"'

    listed = http.get("/v1/accounts", headers=bearer(token)).json()
    assert [a["id"] for a in listed["items"]] == [account["id"]] and listed["next_cursor"] is None


def test_unsupported_currency(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    for currency in ("XXX", "usd", "DOGE"):
        problem(
            http.post("/v1/accounts", json={"currency": currency}, headers=bearer(token)), 422, "unsupported_currency"
        )


def test_other_customers_accounts_are_404(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    account = api.open_account(http, alice)
    for path in ("", "/balance", "/entries"):
        problem(http.get(f"/v1/accounts/{account['id']}{path}", headers=bearer(bob)), 404, "account_not_found")
        # Same answer as for an id that does not exist at all: no existence leak.
        problem(http.get(f"/v1/accounts/{uuid.uuid4()}{path}", headers=bearer(bob)), 404, "account_not_found")
    assert http.get("/v1/accounts", headers=bearer(bob)).json()["items"] == []
    # House accounts are nobody's.
    house = api.sql("SELECT id FROM accounts WHERE kind = 'settlement' AND currency = 'USD'")[0][0]
    problem(http.get(f"/v1/accounts/{house}", headers=bearer(bob)), 404, "account_not_found")
    # Nothing about Alice's account leaks into the answer; the audit log keeps the attempt.
    denied = api.sql(
        "SELECT count(*) FROM audit_log WHERE action = 'access_denied' AND detail ->> 'reason' = 'not_owner' "
        "AND target_type = 'account' AND target_id = %s",
        account["id"],
    )
    assert denied[0][0] >= 3
    r = http.get(f"/v1/accounts/{account['id']}", headers=bearer(bob))
    assert alice not in r.text and "Alice" not in r.text


def test_balance_as_of_and_entries(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    operator = api.staff(http, "operator")
    account = api.open_account(http, token)
    before_any = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    for amount in (100, 250, 50):
        api.deposit(http, operator, account, amount)
    balance = http.get(f"/v1/accounts/{account['id']}/balance", headers=bearer(token)).json()
    assert (balance["ledger_minor"], balance["available_minor"], balance["held_minor"]) == (400, 400, 0)

    past = http.get(f"/v1/accounts/{account['id']}/balance", params={"as_of": before_any}, headers=bearer(token))
    assert past.status_code == 200, past.text
    assert past.json()["ledger_minor"] == 0
    problem(
        http.get(f"/v1/accounts/{account['id']}/balance", params={"as_of": "yesterday"}, headers=bearer(token)),
        422,
        "validation_error",
    )

    # Newest first, paginated by an opaque cursor.
    first = http.get(f"/v1/accounts/{account['id']}/entries", params={"limit": 2}, headers=bearer(token)).json()
    assert [e["amount_minor"] for e in first["items"]] == [50, 250]
    assert [e["balance_after_minor"] for e in first["items"]] == [400, 350]
    assert all(e["direction"] == "credit" and e["currency"] == "USD" for e in first["items"])
    assert first["next_cursor"]
    second = http.get(
        f"/v1/accounts/{account['id']}/entries",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=bearer(token),
    ).json()
    assert [e["amount_minor"] for e in second["items"]] == [100] and second["next_cursor"] is None

    problem(
        http.get(f"/v1/accounts/{account['id']}/entries", params={"cursor": "bogus!"}, headers=bearer(token)),
        422,
        "invalid_cursor",
    )
    for limit in (0, 201, -1):
        problem(
            http.get(f"/v1/accounts/{account['id']}/entries", params={"limit": limit}, headers=bearer(token)),
            422,
            "validation_error",
        )


def test_malformed_ids_are_problems_not_500(api: Api, http: httpx.Client) -> None:
    _, token = api.signup(http)
    for path in ("/v1/accounts/not-a-uuid", "/v1/accounts/123/balance", "/v1/transfers/%27%3B--"):
        r = http.get(path, headers=bearer(token))
        assert r.status_code in (404, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
