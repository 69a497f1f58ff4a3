"""The staff realm: customers, accounts with ETag/If-Match, deposits, FX rates, audit log."""

from __future__ import annotations

import uuid

import httpx
import psycopg

from ledger.outbox import insert_events, make_event
from tests.api.conftest import ADMIN_EMAIL, Api, bearer, new_key
from tests.api.test_auth import problem


def test_customers_list_and_detail(api: Api, http: httpx.Client) -> None:
    staff = api.staff(http, "auditor")
    customer, token = api.signup(http, "Carol")
    account = api.open_account(http, token, "GBP")
    listed = http.get("/ops/v1/customers", params={"email": customer["email"]}, headers=bearer(staff)).json()
    assert [c["customer_id"] for c in listed["items"]] == [customer["customer_id"]]
    detail = http.get(f"/ops/v1/customers/{customer['customer_id']}", headers=bearer(staff))
    assert detail.status_code == 200
    assert [a["id"] for a in detail.json()["accounts"]] == [account["id"]]
    problem(http.get(f"/ops/v1/customers/{uuid.uuid4()}", headers=bearer(staff)), 404, "customer_not_found")

    # Pagination walks every customer once, newest first.
    api.signup(http)
    api.signup(http)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/ops/v1/customers", params=params, headers=bearer(staff)).json()
        seen += [c["customer_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == api.sql("SELECT count(*) FROM customers")[0][0]


def test_account_etag_if_match(api: Api, http: httpx.Client) -> None:
    operator = api.staff(http, "operator")
    _, token = api.signup(http)
    account = api.open_account(http, token)
    url = f"/ops/v1/accounts/{account['id']}"
    got = http.get(url, headers=bearer(operator))
    assert got.status_code == 200
    etag = got.headers["etag"]
    assert etag == f'"{account["version"]}"'

    problem(http.patch(url, json={"status": "frozen"}, headers=bearer(operator)), 428, "precondition_required")
    problem(
        http.patch(url, json={"status": "frozen"}, headers=bearer(operator) | {"If-Match": '"999"'}),
        412,
        "version_conflict",
    )
    problem(
        http.patch(url, json={"status": "frozen"}, headers=bearer(operator) | {"If-Match": "garbage"}),
        412,
        "version_conflict",
    )
    frozen = http.patch(url, json={"status": "frozen"}, headers=bearer(operator) | {"If-Match": etag})
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["status"] == "frozen"
    new_etag = frozen.headers["etag"]
    assert new_etag != etag and new_etag == f'"{frozen.json()["version"]}"'
    # The old ETag is stale now: the second writer of a stale view loses.
    problem(
        http.patch(url, json={"status": "active"}, headers=bearer(operator) | {"If-Match": etag}),
        412,
        "version_conflict",
    )
    # The customer sees the new version too.
    assert http.get(f"/v1/accounts/{account['id']}", headers=bearer(token)).headers["etag"] == new_etag

    # A frozen account takes no deposit.
    body = {"account_id": account["id"], "amount_minor": 100, "currency": "USD", "external_reference": "w"}
    problem(
        http.post("/ops/v1/deposits", json=body, headers=bearer(operator) | {"Idempotency-Key": new_key()}),
        422,
        "account_frozen",
    )
    # Audited with before and after.
    row = api.sql(
        "SELECT before, after FROM audit_log WHERE action = 'account.status_change' AND target_id = %s",
        account["id"],
    )
    assert row == [({"status": "active", "version": 1}, {"status": "frozen", "version": 2})]
    # Approvers may read accounts but not change them.
    approver = api.staff(http, "approver")
    assert http.get(url, headers=bearer(approver)).status_code == 200
    problem(
        http.patch(url, json={"status": "active"}, headers=bearer(approver) | {"If-Match": new_etag}), 403, "forbidden"
    )
    problem(http.get(f"/ops/v1/accounts/{uuid.uuid4()}", headers=bearer(operator)), 404, "account_not_found")


def test_deposit_refusals(api: Api, http: httpx.Client) -> None:
    operator = api.staff(http, "operator")
    _, token = api.signup(http)
    account = api.open_account(http, token, "JPY")

    def deposit(**overrides: object) -> httpx.Response:
        body = {"account_id": account["id"], "amount_minor": 500, "currency": "JPY", "external_reference": "w"}
        body.update(overrides)
        return http.post("/ops/v1/deposits", json=body, headers=bearer(operator) | {"Idempotency-Key": new_key()})

    problem(deposit(currency="USD"), 422, "currency_mismatch")
    problem(deposit(amount_minor=0), 422, "invalid_amount")
    problem(deposit(amount_minor=-5), 422, "invalid_amount")
    problem(deposit(amount_minor=10.5), 422, "invalid_amount")
    problem(deposit(amount_minor=10.0), 422, "invalid_amount")
    problem(deposit(amount_minor="10"), 422, "invalid_amount")
    problem(deposit(account_id=str(uuid.uuid4())), 404, "account_not_found")
    ok = deposit()
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert set(body) == {"transaction_id", "account_id", "amount_minor", "currency", "posted_at"}
    assert (body["account_id"], body["amount_minor"], body["currency"]) == (account["id"], 500, "JPY")
    audit_row = api.sql(
        "SELECT actor_realm, after ->> 'transaction_id' FROM audit_log WHERE action = 'deposit.create' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert audit_row == [("staff", body["transaction_id"])]


def test_fx_rates(api: Api, http: httpx.Client) -> None:
    admin = api.admin_token(http)
    operator = api.staff(http, "operator")
    got = http.get("/ops/v1/fx/rates/USD/EUR", headers=bearer(operator))
    assert got.status_code == 200, got.text
    before = got.json()
    put = http.put("/ops/v1/fx/rates/USD/EUR", json={"rate": "0.9182", "spread_bps": 25}, headers=bearer(admin))
    assert put.status_code == 200, put.text
    after = put.json()
    assert (after["rate"], after["spread_bps"], after["updated_by"]) == ("0.9182", 25, ADMIN_EMAIL)
    assert after["version"] == before["version"] + 1
    problem(
        http.put("/ops/v1/fx/rates/USD/EUR", json={"rate": "0", "spread_bps": 25}, headers=bearer(admin)),
        422,
        "invalid_rate",
    )
    problem(
        http.put("/ops/v1/fx/rates/USD/EUR", json={"rate": 0.9, "spread_bps": 25}, headers=bearer(admin)),
        422,
        "validation_error",
    )
    problem(
        http.put("/ops/v1/fx/rates/USD/USD", json={"rate": "1", "spread_bps": 0}, headers=bearer(admin)),
        422,
        "unsupported_pair",
    )
    problem(
        http.put("/ops/v1/fx/rates/USD/ZZZ", json={"rate": "1", "spread_bps": 0}, headers=bearer(admin)),
        422,
        "unsupported_currency",
    )
    problem(http.get("/ops/v1/fx/rates/USD/ZZZ", headers=bearer(operator)), 422, "unsupported_pair")
    assert any(
        r["base"] == "USD" and r["quote"] == "EUR"
        for r in http.get("/ops/v1/fx/rates", headers=bearer(operator)).json()["items"]
    )
    audit_row = api.sql(
        "SELECT before ->> 'rate', after ->> 'rate' FROM audit_log WHERE action = 'fx.rate_set' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert audit_row == [(before["rate"], "0.9182")]


def test_audit_log_reading_and_chain(api: Api, http: httpx.Client) -> None:
    from ledger import audit

    auditor = api.staff(http, "auditor")
    page = http.get("/ops/v1/audit-log", params={"limit": 3}, headers=bearer(auditor)).json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True)
    nxt = http.get(
        "/ops/v1/audit-log", params={"limit": 3, "cursor": page["next_cursor"]}, headers=bearer(auditor)
    ).json()
    assert nxt["items"][0]["id"] < ids[-1]
    denied = http.get("/ops/v1/audit-log", params={"outcome": "denied"}, headers=bearer(auditor)).json()
    assert all(e["outcome"] == "denied" for e in denied["items"])
    with api.engine.connect() as conn:
        assert audit.verify(conn) is None


def test_dead_letters_and_parked_events_are_listed_for_staff_without_their_bodies(api: Api, http: httpx.Client) -> None:
    staff = api.staff(http, "auditor")
    event_id = uuid.uuid4()
    # A notification the notifier could not apply (its body would hold a passcode).
    api.sql(
        'INSERT INTO consumer_dead_letters (consumer, topic, "partition", "offset", event_id, event_type, key, '
        "value, error) VALUES ('notifier', 'ledgerflow.notifications', 0, 41, %s, 'notification.requested', "
        "'k-1', %s, 'KeyError: customer_id')",
        event_id,
        b'{"data": {"body": "code 123456"}}',
    )
    with psycopg.connect(api.pg_url) as conn:
        event = make_event("account.opened", business_id=uuid.uuid4(), key=uuid.uuid4(), data={"x": 1})
        insert_events(conn, [event])
        conn.execute(
            "UPDATE outbox SET parked = true, attempts = 1, last_error = 'message too large' WHERE id = %s",
            (event.id,),
        )

    letters = http.get("/ops/v1/dead-letters", headers=bearer(staff))
    assert letters.status_code == 200
    [letter] = [d for d in letters.json()["items"] if d["event_id"] == str(event_id)]
    assert (letter["consumer"], letter["offset"], letter["error"]) == ("notifier", 41, "KeyError: customer_id")
    assert "123456" not in letters.text and "value" not in letter

    parked = http.get("/ops/v1/outbox/parked", headers=bearer(staff))
    assert parked.status_code == 200
    [row] = [p for p in parked.json()["items"] if p["id"] == str(event.id)]
    assert (row["type"], row["topic"], row["last_error"]) == (
        "account.opened",
        "ledgerflow.accounts",
        "message too large",
    )
    assert "payload" not in row

    # Where the relay stands (no relay runs here): the row waits, the failure shows until a
    # page is published.
    api.sql("UPDATE outbox SET parked = false WHERE id = %s", event.id)
    api.sql("UPDATE outbox_cursor SET failures = failures + 1, last_error = 'broker down', last_error_at = now()")
    try:
        status = http.get("/ops/v1/outbox/relay", headers=bearer(staff))
        assert status.status_code == 200
        body = status.json()
        assert body["waiting"] >= 1 and body["failures"] >= 1
        assert (body["last_error"], body["last_error_at"] is not None) == ("broker down", True)
    finally:
        api.sql("UPDATE outbox_cursor SET last_error = NULL, last_error_at = NULL")
        api.sql("UPDATE outbox SET parked = true WHERE id = %s", event.id)

    # Resolved letters leave the list; a customer's token is refused.
    api.sql("UPDATE consumer_dead_letters SET resolved_at = now() WHERE event_id = %s", event_id)
    assert str(event_id) not in http.get("/ops/v1/dead-letters", headers=bearer(staff)).text
    _, token = api.signup(http)
    assert http.get("/ops/v1/dead-letters", headers=bearer(token)).status_code == 401
