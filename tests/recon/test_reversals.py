"""Maker-checker reversals through the API: four eyes, compensating entries, overdraw and force."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from ledger.db import make_engine
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from tests.api.conftest import Api, bearer, new_key
from tests.recon.conftest import StaffMember, customer, deposit, posted_transfer, staff_member


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def request_reversal(http: httpx.Client, who: StaffMember, transfer_id: str, **headers: str) -> httpx.Response:
    return http.post(
        f"/ops/v1/transfers/{transfer_id}/reversals", json={"reason": "paid twice"}, headers=who.auth | headers
    )


def approve(http: httpx.Client, who: StaffMember, reversal_id: str, **body: Any) -> httpx.Response:
    return http.post(f"/ops/v1/reversals/{reversal_id}/approve", json=body or None, headers=who.auth)


def ledger_balance(api: Api, account_id: str) -> tuple[int, int]:
    [(ledger_minor, held_minor)] = api.sql(
        "SELECT ledger_minor, held_minor FROM account_balances WHERE account_id = %s", account_id
    )
    return int(ledger_minor), int(held_minor)


def audit_rows(api: Api, reversal_id: str) -> list[tuple[Any, ...]]:
    return api.sql(
        "SELECT action, outcome, detail FROM audit_log WHERE target_type = 'reversal' AND target_id = %s ORDER BY id",
        reversal_id,
    )


def test_request_approve_posts_compensating_entries(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    approver = staff_member(api, http, "approver")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 1_000, "wire-rev-1")
    transfer_id = posted_transfer(api, http, alice, bob, 400)

    # An operator requests (an approver cannot: that is the operator's role).
    problem(request_reversal(http, approver, transfer_id), 403, "forbidden")
    requested = request_reversal(http, operator, transfer_id, **{"Idempotency-Key": new_key()})
    assert requested.status_code == 201, requested.text
    reversal = requested.json()
    assert (reversal["transfer_id"], reversal["status"], reversal["requested_by"]) == (
        transfer_id,
        "pending_approval",
        operator.id,
    )
    # One live reversal per transfer; unknown transfers are 404.
    problem(request_reversal(http, operator, transfer_id), 409, "not_reversible")
    problem(request_reversal(http, operator, str(uuid.uuid4())), 404, "transfer_not_found")

    approved = approve(http, approver, reversal["id"])
    assert approved.status_code == 200, approved.text
    done = approved.json()
    assert (done["status"], done["decided_by"], done["forced"], done["shortfall_minor"]) == (
        "approved",
        approver.id,
        False,
        0,
    )

    # The transfer shows reversed, linked both ways, with its transfer.reversed event.
    ops = http.get(f"/ops/v1/transfers/{transfer_id}", headers=operator.auth).json()
    assert ops["status"] == "reversed"
    assert [e["type"] for e in ops["events"]].count("transfer.reversed") == 1
    [(kind, key, txn_transfer)] = api.sql(
        "SELECT kind, idempotency_key, transfer_id FROM ledger_transactions WHERE id = %s", done["transaction_id"]
    )
    assert (kind, str(key), str(txn_transfer)) == ("reversal", reversal["id"], transfer_id)
    [(reversal_txn,)] = api.sql("SELECT reversal_transaction_id FROM transfers WHERE id = %s", transfer_id)
    assert str(reversal_txn) == done["transaction_id"]
    # Nothing edited: the original legs are still there, the compensating ones mirror them.
    legs = api.sql(
        "SELECT e.account_id::text, e.direction, e.amount_minor, t.kind FROM entries e "
        "JOIN ledger_transactions t ON t.id = e.transaction_id JOIN transfers x ON x.id = %s "
        "WHERE e.transaction_id IN (x.transaction_id, x.reversal_transaction_id) ORDER BY t.kind, e.direction",
        transfer_id,
    )
    assert sorted(legs) == sorted(
        [
            (alice.account["id"], "debit", 400, "transfer"),
            (bob.account["id"], "credit", 400, "transfer"),
            (alice.account["id"], "credit", 400, "reversal"),
            (bob.account["id"], "debit", 400, "reversal"),
        ]
    )
    assert ledger_balance(api, alice.account["id"]) == (1_000, 0)
    assert ledger_balance(api, bob.account["id"]) == (0, 0)

    # Decided once; the transfer cannot be reversed again.
    problem(approve(http, approver, reversal["id"]), 409, "reversal_not_pending")
    problem(request_reversal(http, operator, transfer_id), 409, "not_reversible")
    got = http.get(f"/ops/v1/reversals/{reversal['id']}", headers=operator.auth)
    assert got.status_code == 200 and got.json()["status"] == "approved"
    assert [(a, o) for a, o, _ in audit_rows(api, reversal["id"])] == [
        ("reversal.request", "ok"),
        ("reversal.approve", "ok"),
    ]


def test_four_eyes_and_not_posted(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    admin = staff_member(api, http, "admin")  # holds both roles: only four eyes stops them
    approver = staff_member(api, http, "approver")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 500, "wire-rev-2")
    transfer_id = posted_transfer(api, http, alice, bob, 100)

    reversal = request_reversal(http, admin, transfer_id).json()
    problem(approve(http, admin, reversal["id"]), 403, "four_eyes_required")
    problem(
        http.post(f"/ops/v1/reversals/{reversal['id']}/reject", json={"reason": "mine"}, headers=admin.auth),
        403,
        "four_eyes_required",
    )
    assert api.sql("SELECT status FROM transfers WHERE id = %s", transfer_id) == [("posted",)]
    assert ("reversal.approve", "denied") in [(a, o) for a, o, _ in audit_rows(api, reversal["id"])]

    # Another approver may reject it; then a new request is possible.
    rejected = http.post(
        f"/ops/v1/reversals/{reversal['id']}/reject", json={"reason": "not a duplicate"}, headers=approver.auth
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = request_reversal(http, operator, transfer_id)
    assert again.status_code == 201, again.text
    pending = http.get("/ops/v1/reversals?status=pending_approval", headers=approver.auth).json()["items"]
    assert again.json()["id"] in [r["id"] for r in pending]

    # A transfer that is not posted is not reversible.
    r = http.post(
        "/v1/transfers",
        json={
            "source_account_id": alice.account["id"],
            "destination_account_id": bob.account["id"],
            "amount_minor": 10,
            "currency": "USD",
        },
        headers=bearer(alice.token) | {"Idempotency-Key": new_key()},
    )
    assert r.status_code == 201, r.text
    problem(request_reversal(http, operator, r.json()["id"]), 409, "not_reversible")
    http.post(f"/v1/transfers/{r.json()['id']}/cancel", headers=bearer(alice.token))


def test_overdraw_refused_unless_forced(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    approver = staff_member(api, http, "approver")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    deposit(http, operator, alice.account, 1_000, "wire-rev-3")
    transfer_id = posted_transfer(api, http, alice, bob, 400)
    # Bob has committed 300 of it elsewhere: only 100 is available to take back.
    ledger = Ledger(make_engine(api.database_url, pool_size=2))
    # (held by a transfer of Bob's that waits for its code)
    held_by = ledger.create_transfer_with_hold(
        uuid7(), uuid.UUID(bob.id), uuid.UUID(bob.account["id"]), uuid.UUID(alice.account["id"]), Money(300, "USD")
    ).id
    settlement = ledger.house_account("settlement", "USD").id
    settlement_before = ledger.balance(settlement).ledger_minor
    try:
        reversal = request_reversal(http, operator, transfer_id).json()
        refused = problem(approve(http, approver, reversal["id"]), 409, "reversal_would_overdraw")
        assert (refused["account_id"], refused["available_minor"], refused["required_minor"]) == (
            bob.account["id"],
            100,
            400,
        )
        assert api.sql("SELECT status FROM reversals WHERE id = %s", reversal["id"]) == [("pending_approval",)]
        assert api.sql("SELECT status FROM transfers WHERE id = %s", transfer_id) == [("posted",)]

        forced = approve(http, approver, reversal["id"], force=True, reason="fraud: recover from payee later")
        assert forced.status_code == 200, forced.text
        body = forced.json()
        assert (body["status"], body["forced"], body["shortfall_minor"], body["shortfall_currency"]) == (
            "approved",
            True,
            300,
            "USD",
        )
        # Alice is made whole; Bob gives back what was available; settlement carries the rest.
        assert ledger_balance(api, alice.account["id"]) == (1_000, 0)
        assert ledger_balance(api, bob.account["id"]) == (300, 300)
        assert ledger.balance(settlement).ledger_minor == settlement_before - 300
        assert api.sql("SELECT status FROM transfers WHERE id = %s", transfer_id) == [("reversed",)]
        assert api.sql("SELECT forced, shortfall_minor FROM reversals WHERE id = %s", reversal["id"]) == [(True, 300)]
        trail = audit_rows(api, reversal["id"])
        assert [(a, o) for a, o, _ in trail] == [
            ("reversal.request", "ok"),
            ("reversal.approve", "denied"),
            ("reversal.approve", "ok"),
        ]
        assert trail[1][2]["reason"] == "reversal_would_overdraw"
        assert trail[2][2]["force"] is True and trail[2][2]["shortfall_minor"] == 300
    finally:
        ledger.void_transfer_hold(held_by, "cancelled", "test cleanup")
        ledger.engine.dispose()
