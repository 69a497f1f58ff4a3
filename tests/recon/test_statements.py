"""Bank statement import and matching: the rules on their own, then through the API."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from ledger.ids import house_account_id
from recon.errors import InvalidStatement
from recon.statements import LedgerItem, MatchPolicy, StatementLine, match, parse_statement
from tests.api.conftest import Api
from tests.recon.conftest import customer, deposit, staff_member

DAY = date(2026, 3, 10)


def line(no: int, amount: int, ref: str = "", day: date = DAY) -> StatementLine:
    return StatementLine(no, day, amount, "USD", ref, f"line {no}")


def item(amount: int, ref: str = "", day: date = DAY) -> LedgerItem:
    posted = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return LedgerItem(uuid.uuid4(), uuid.uuid4(), posted, amount, ref, "")


def test_rules_one_to_one_one_to_many_and_drift() -> None:
    batch_a, batch_b = item(100, "BATCH-1"), item(250, "BATCH-1")
    split = item(900, "SPLIT-1")
    by_amount = item(75, "ours-4", date(2026, 3, 9))
    too_far = item(75, "ours-5", date(2026, 3, 1))
    card_a, card_b, card_c = item(30), item(47), item(1000)
    lines = [
        line(2, 350, "BATCH-1"),  # one line, two entries (bank batch)
        line(3, 400, "SPLIT-1"),
        line(4, 500, "SPLIT-1"),  # two lines, one entry (split)
        line(5, 75, "BANK-REF"),  # no reference match: amount and date (one day apart)
        line(6, 75, "BANK-REF-2"),  # the only other 75 is 9 days away: unmatched
        line(7, 75, "BANK-REF-3", date(2026, 2, 1)),
        line(8, 75, "", date(2026, 3, 20)),
        line(9, 77, "SETTLE"),  # one line, two entries by amount (30 + 47)
    ]
    report = match(lines, [batch_a, batch_b, split, by_amount, too_far, card_a, card_b, card_c], MatchPolicy())
    found = {tuple(m.as_dict()["lines"]): m.as_dict() for m in report.matches}
    assert found[(2,)]["kind"] == "1:n" and found[(2,)]["drift_minor"] == 0
    assert found[(3, 4)]["kind"] == "n:1" and found[(3, 4)]["rule"] == "reference"
    assert found[(5,)]["rule"] == "amount_date" and found[(5,)]["entry_ids"] == [str(by_amount.entry_id)]
    assert set(found[(9,)]["entry_ids"]) == {str(card_a.entry_id), str(card_b.entry_id)}
    assert sorted(line.line_no for line in report.unmatched_lines) == [6, 7, 8]
    assert {e.entry_id for e in report.unmatched_entries} == {too_far.entry_id, card_c.entry_id}
    # Reference match with different sums: reported as drift.
    drift = match([line(2, 990, "W-1")], [item(1000, "W-1")], MatchPolicy()).matches[0]
    assert drift.drift_minor == -10


def test_parse_refuses_bad_lines_by_number() -> None:
    good = b"date,amount,currency,reference,description\n2026-03-10,12.34,USD,W-1,wire\n2026-03-11,-0.50,USD,F,fee\n"
    assert [(ln.line_no, ln.amount_minor) for ln in parse_statement(good, "USD")] == [(2, 1234), (3, -50)]
    cases = {
        b"date,amount,currency,reference\n": 1,  # no description column
        b"date,amount,currency,reference,description\n2026-03-10,1.00,USD,a,b\n2026-13-01,1.00,USD,a,b\n": 3,
        b"date,amount,currency,reference,description\n2026-03-10,1.001,USD,a,b\n": 2,  # USD has 2 decimals
        b"date,amount,currency,reference,description\n2026-03-10,0,USD,a,b\n": 2,
        b"date,amount,currency,reference,description\n2026-03-10,1.00,EUR,a,b\n": 2,
        b"date,amount,currency,reference,description\n2026-03-10,1.00,USD,a\n": 2,
        b"date,amount,currency,reference,description\n\n2026-03-10,1.00,USD,a,b\n2026-03-10,1e3,USD,a,b\n": 4,
        b"date,amount,currency,reference,description\n2026-03-10,1.00,USD,\xff,b\n": 2,  # not UTF-8
        b"date,amount,currency,reference,description\n": 1,  # no lines
        b"": 1,
    }
    for data, line_no in cases.items():
        with pytest.raises(InvalidStatement) as caught:
            parse_statement(data, "USD")
        assert caught.value.line == line_no, (data, caught.value)


def statement_csv(rows: list[tuple[str, str, str]]) -> bytes:
    today = datetime.now(UTC).date().isoformat()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "amount", "currency", "reference", "description"])
    writer.writerows([today, amount, "CHF", ref, desc] for amount, ref, desc in rows)
    return out.getvalue().encode()


def post_statement(http: httpx.Client, token: dict[str, str], account_id: str, data: bytes) -> httpx.Response:
    return http.post(
        "/ops/v1/reconciliation/statements",
        params={"account_id": account_id},
        content=data,
        headers=token | {"Content-Type": "text/csv"},
    )


def counts(api: Api) -> tuple[Any, ...]:
    return api.sql(
        "SELECT (SELECT count(*) FROM statement_imports), (SELECT count(*) FROM statement_lines), "
        "(SELECT count(*) FROM statement_matches)"
    )[0]


def test_import_match_missing_extra_and_reimport(api: Api, http: httpx.Client) -> None:
    # CHF: no other test posts in it, so settlement:CHF holds only these deposits.
    operator = staff_member(api, http, "operator")
    zoe = customer(api, http, "Zoe", "CHF")
    tag = uuid.uuid4().hex[:6]
    for amount, ref in [(10_000, "W1"), (5_000, "W2"), (10_000, "B7"), (20_000, "B7"), (7_500, "W4"), (2_000, "W5")]:
        deposit(http, operator, zoe.account, amount, f"{ref}-{tag}")
    settlement = str(house_account_id("settlement", "CHF"))
    data = statement_csv(
        [
            ("100.00", f"W1-{tag}", "wire in"),
            ("49.50", f"W2-{tag}", "wire in, bank fee deducted"),  # drift -50
            ("300.00", f"B7-{tag}", "batch"),  # one line, two deposits
            ("75.00", "BANK-000123", "wire in (bank's own reference)"),  # amount and date
            ("-12.50", "FEE-MARCH", "account fee"),  # extra: not in the ledger
        ]
    )  # and W5 (20.00) is missing from the statement

    first = post_statement(http, operator.auth, settlement, data)
    assert first.status_code == 201, first.text
    report = first.json()
    assert report["replayed"] is False
    assert report["summary"] == {
        "lines": 5,
        "matched_lines": 4,
        "matched_entries": 5,
        "unmatched_lines": 1,
        "unmatched_entries": 1,
        "drift_groups": 1,
        "drift_minor": -50,
    }
    assert [(u["line"], u["amount_minor"]) for u in report["unmatched_statement"]] == [(6, -1250)]
    assert [(u["reference"], u["amount_minor"]) for u in report["unmatched_ledger"]] == [(f"W5-{tag}", 2_000)]
    assert [d["lines"] for d in report["drift"]] == [[3]]
    by_line = {tuple(m["lines"]): m for m in report["matched"]}
    assert by_line[(4,)]["kind"] == "1:n" and by_line[(5,)]["rule"] == "amount_date"
    audit = api.sql("SELECT action, detail ->> 'replayed' FROM audit_log WHERE target_id = %s", report["id"])
    assert audit == [("statement.import", "false")]

    # The same file again: the first report, nothing written.
    before = counts(api)
    again = post_statement(http, operator.auth, settlement, data)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == report["id"] and again.json()["replayed"] is True
    assert again.json()["summary"] == report["summary"]
    assert counts(api) == before
    read = http.get(f"/ops/v1/reconciliation/statements/{report['id']}", headers=operator.auth)
    assert read.status_code == 200 and read.json()["matched"] == report["matched"]

    # Bad input names its line; only settlement accounts; only operators.
    bad = post_statement(http, operator.auth, settlement, data.replace(b"-12.50", b"-12.5x"))
    assert bad.status_code == 422 and (bad.json()["code"], bad.json()["line"]) == ("invalid_statement", 6)
    assert bad.headers["content-type"].startswith("application/problem+json")
    wrong = post_statement(http, operator.auth, zoe.account["id"], data)
    assert wrong.status_code == 422 and wrong.json()["code"] == "not_a_settlement_account"
    missing = post_statement(http, operator.auth, str(uuid.uuid4()), data)
    assert missing.status_code == 404 and missing.json()["code"] == "account_not_found"
    auditor = staff_member(api, http, "auditor")
    assert post_statement(http, auditor.auth, settlement, data).status_code == 403
