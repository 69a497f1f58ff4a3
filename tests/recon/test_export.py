"""Account statement CSV for a period: opening balance, entries, closing balance, as of any instant."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.api.conftest import Api
from tests.recon.conftest import customer, deposit, posted_transfer, staff_member


def statement(http: httpx.Client, auth: dict[str, str], account_id: str, **params: str) -> list[dict[str, str]]:
    r = http.get(f"/ops/v1/accounts/{account_id}/statement.csv", params=params, headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(r.text)))


def test_statement_csv_point_in_time(api: Api, http: httpx.Client) -> None:
    operator = staff_member(api, http, "operator")
    auditor = staff_member(api, http, "auditor")
    alice, bob = customer(api, http, "Alice"), customer(api, http, "Bob")
    start = datetime.now(UTC) - timedelta(seconds=1)
    deposit(http, operator, alice.account, 1_000, '=HYPERLINK("http://evil")')
    time.sleep(0.05)
    middle = datetime.now(UTC)
    posted_transfer(api, http, alice, bob, 300)
    account = alice.account["id"]

    whole = statement(http, auditor.auth, account, **{"from": start.isoformat()})
    assert [r["row_type"] for r in whole] == ["opening_balance", "entry", "entry", "closing_balance"]
    assert whole[0]["balance_after_minor"] == "0" and whole[-1]["balance_after_minor"] == "700"
    assert [(r["direction"], r["amount_minor"], r["amount"]) for r in whole[1:3]] == [
        ("credit", "1000", "10.00"),
        ("debit", "300", "3.00"),
    ]
    # A reference that a spreadsheet would run as a formula is written inert.
    assert whole[1]["external_reference"].startswith("'=")

    # The past: until `middle` only the deposit; from `middle` on, opening at 1000.
    before = statement(http, auditor.auth, account, **{"from": start.isoformat(), "to": middle.isoformat()})
    assert [r["row_type"] for r in before] == ["opening_balance", "entry", "closing_balance"]
    assert before[-1]["balance_after_minor"] == "1000"
    after = statement(http, auditor.auth, account, **{"from": middle.isoformat()})
    assert (after[0]["balance_after_minor"], len(after), after[-1]["balance_after_minor"]) == ("1000", 3, "700")

    r = http.get(f"/ops/v1/accounts/{uuid.uuid4()}/statement.csv", params={"from": "2026-01-01"}, headers=auditor.auth)
    assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    r = http.get(
        f"/ops/v1/accounts/{account}/statement.csv",
        params={"from": "2026-01-02", "to": "2026-01-01"},
        headers=auditor.auth,
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_period"
    # Staff realm only.
    assert http.get(f"/ops/v1/accounts/{account}/statement.csv", params={"from": "2026-01-01"}).status_code == 401
