"""Idempotency-Key semantics on the money-moving POSTs (deposits and transfers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg

from tests.api.conftest import Api, bearer, new_key
from tests.api.test_auth import problem
from tests.api.test_transfers import balance, start


@contextmanager
def balance_row_locked(api: Api, account_id: str) -> Iterator[None]:
    """Hold the account's balance row lock, so any posting or hold on it waits: a request
    that touches it stays in flight until the block ends."""
    with psycopg.connect(api.pg_url) as conn:
        conn.execute("SELECT 1 FROM account_balances WHERE account_id = %s FOR UPDATE", (account_id,))
        yield
        conn.rollback()


def wait_claimed(api: Api, key: str) -> None:
    deadline = time.monotonic() + 10
    while not api.sql("SELECT 1 FROM idempotency_keys WHERE key = %s AND state = 'processing'", key):
        assert time.monotonic() < deadline, "the first request never claimed its key"
        time.sleep(0.01)


class InBackground:
    def __init__(self, api: Api, method: str, url: str, **kwargs: Any) -> None:
        self.response: httpx.Response | None = None

        def run() -> None:
            with api.client() as client:
                self.response = client.request(method, url, **kwargs)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def result(self) -> httpx.Response:
        self.thread.join(30)
        assert self.response is not None
        return self.response


def test_deposit_key_semantics(api: Api, http: httpx.Client) -> None:
    operator = api.staff(http, "operator")
    other_operator = api.staff(http, "operator")
    _, token = api.signup(http)
    account = api.open_account(http, token)
    body = {"account_id": account["id"], "amount_minor": 700, "currency": "USD", "external_reference": "wire-7"}
    headers = bearer(operator)

    problem(http.post("/ops/v1/deposits", json=body, headers=headers), 400, "idempotency_key_missing")
    problem(
        http.post("/ops/v1/deposits", json=body, headers=headers | {"Idempotency-Key": ""}),
        400,
        "idempotency_key_missing",
    )
    problem(
        http.post("/ops/v1/deposits", json=body, headers=headers | {"Idempotency-Key": "k" * 256}),
        422,
        "validation_error",
    )

    key = new_key()
    first = http.post("/ops/v1/deposits", json=body, headers=headers | {"Idempotency-Key": key})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # Key order and whitespace do not make a different request.
    reordered = b'{ "external_reference": "wire-7", "currency": "USD", "amount_minor": 700, "account_id": "%s" }' % (
        account["id"].encode()
    )
    for content in (None, reordered):
        kwargs: dict[str, Any] = {"content": content} if content else {"json": body}
        replay = http.post(
            "/ops/v1/deposits",
            headers=headers | {"Idempotency-Key": key, "content-type": "application/json"},
            **kwargs,
        )
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
    assert balance(http, token, account)["ledger_minor"] == 700

    # Same key, different body: refused, nothing posted.
    changed = http.post(
        "/ops/v1/deposits", json=body | {"amount_minor": 701}, headers=headers | {"Idempotency-Key": key}
    )
    problem(changed, 422, "idempotency_key_reused")
    # Keys are per principal: another operator's identical key is a different request.
    theirs = http.post("/ops/v1/deposits", json=body, headers=bearer(other_operator) | {"Idempotency-Key": key})
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()["transaction_id"] != first.json()["transaction_id"]
    assert balance(http, token, account)["ledger_minor"] == 1400
    # Kept at least 24 h.
    kept = api.sql(
        "SELECT expires_at - created_at >= interval '24 hours', request_hash FROM idempotency_keys WHERE key = %s", key
    )
    assert all(ok for ok, _ in kept) and all(len(h) == 64 for _, h in kept)


def test_deposit_retry_while_in_flight(api: Api, http: httpx.Client) -> None:
    operator = api.staff(http, "operator")
    _, token = api.signup(http)
    account = api.open_account(http, token)
    key = new_key()
    body = {"account_id": account["id"], "amount_minor": 300, "currency": "USD", "external_reference": "wire-9"}
    headers = bearer(operator) | {"Idempotency-Key": key}
    with balance_row_locked(api, account["id"]):
        slow = InBackground(api, "POST", "/ops/v1/deposits", json=body, headers=headers)
        wait_claimed(api, key)
        problem(http.post("/ops/v1/deposits", json=body, headers=headers), 409, "idempotency_key_in_flight")
        # Reuse with another body is still a reuse, even in flight.
        problem(
            http.post("/ops/v1/deposits", json=body | {"amount_minor": 1}, headers=headers),
            422,
            "idempotency_key_reused",
        )
    first = slow.result()
    assert first.status_code == 201, first.text
    replay = http.post("/ops/v1/deposits", json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content
    assert balance(http, token, account)["ledger_minor"] == 300


def test_transfer_key_semantics(api: Api, http: httpx.Client) -> None:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    api.deposit(http, operator, a, 1000)
    key = new_key()

    with balance_row_locked(api, a["id"]):
        slow = InBackground(
            api,
            "POST",
            "/v1/transfers",
            json={
                "source_account_id": a["id"],
                "destination_account_id": b["id"],
                "amount_minor": 100,
                "currency": "USD",
                "description": "rent",
            },
            headers=bearer(alice) | {"Idempotency-Key": key},
        )
        wait_claimed(api, key)
        time.sleep(0.2)  # the workflow is running now, its hold waiting on the lock
        problem(start(http, alice, a, b, 100, key=key), 409, "idempotency_key_in_flight")
    first = slow.result()
    assert first.status_code == 201, first.text
    transfer_id = first.json()["id"]

    replay = start(http, alice, a, b, 100, key=key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    problem(start(http, alice, a, b, 101, key=key), 422, "idempotency_key_reused")
    # Another customer may use the same key for their own transfer.
    c = api.open_account(http, bob)
    api.deposit(http, operator, c, 50)
    theirs = start(http, bob, c, a, 50, key=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != transfer_id

    # One transfer, one hold of 100, whatever was retried.
    assert api.sql("SELECT count(*) FROM transfers WHERE source_account_id = %s", a["id"]) == [(1,)]
    assert balance(http, alice, a)["held_minor"] == 100


def test_transfer_retry_after_crash_reaches_same_transfer(api: Api, http: httpx.Client) -> None:
    """The first attempt started the workflow and died before storing its answer: the retry
    re-takes the lapsed claim, finds the persisted transfer id, and joins that workflow."""
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    api.deposit(http, operator, a, 1000)
    key = new_key()
    first = start(http, alice, a, b, 100, key=key)
    assert first.status_code == 201
    # Simulate the crash: the claim is back to processing, its lease lapsed, no answer kept.
    api.sql(
        "UPDATE idempotency_keys SET state = 'processing', response_status = NULL, response_body = NULL, "
        "response_headers = NULL, locked_until = now() - interval '1 second' WHERE key = %s",
        key,
    )
    retried = start(http, alice, a, b, 100, key=key)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["id"] == first.json()["id"]
    assert retried.json()["status"] == "pending_otp"
    assert api.sql("SELECT count(*) FROM transfers WHERE source_account_id = %s", a["id"]) == [(1,)]
    assert balance(http, alice, a)["held_minor"] == 100
    # From now on the retry's answer is the one replayed.
    again = start(http, alice, a, b, 100, key=key)
    assert again.headers["idempotent-replayed"] == "true" and again.content == retried.content
