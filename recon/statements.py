"""External statement reconciliation: a bank's or processor's statement of a settlement
account, matched against the ledger's entries on that account.

File: CSV with a header naming (in any order, case-insensitive) `date` (YYYY-MM-DD),
`amount` (decimal string in major units, signed: + money into the bank account, - out),
`currency`, `reference`, `description`. UTF-8 (a BOM is fine).

Sign: the settlement account mirrors the bank account on the ledger's side. A deposit debits
it, and the bank shows the same money coming in: a statement amount of +X matches a debit
of X on settlement; -X a credit.

Rules, in order, each on what the previous left unmatched:
1. reference: the statement reference equals the entry's transaction external reference
   (a deposit's `external_reference`). All lines and entries sharing a reference form one
   match (1:1, 1:n for a bank batch, n:1 for a split); a difference in sums is reported
   as amount drift.
2. amount and date: same signed amount, dates within `date_tolerance_days`, closest date
   first (1:1); then one line against 2..`max_group` entries of the window whose amounts sum
   to it exactly (1:n, a settlement batch under the bank's own reference).
Left over: unmatched statement lines, and unmatched entries dated inside the statement's
period (entries just outside it may be on the neighbouring statement).

Importing the same bytes again (sha256, unique per account) returns the first report and
writes nothing. An entry is matched by at most one import (statement_matches is unique on
the entry), so overlapping statements do not match one deposit twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from psycopg.types.json import Jsonb

from ledger.accounts import AccountKind
from ledger.db import Conn
from ledger.errors import AccountNotFound, InvalidAmount, UnsupportedCurrency
from ledger.money import Money
from recon.errors import InvalidStatement, NotSettlementAccount, StatementNotFound

COLUMNS: Final = ("date", "amount", "currency", "reference", "description")
MAX_LINES: Final = 100_000
MAX_TEXT: Final = 500
_AMOUNT: Final = re.compile(r"[+-]?[0-9]{1,20}(\.[0-9]{1,6})?")
# Serialises imports of one account (two imports must not both match the same entry).
_LOCK_NAMESPACE: Final = 0x73746D74  # "stmt"


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_no: int
    value_date: date
    amount_minor: int  # signed: + into the bank account
    currency: str
    reference: str
    description: str


@dataclass(frozen=True, slots=True)
class LedgerItem:
    """An entry on the settlement account, signed from the bank's side (+ debit, - credit)."""

    entry_id: UUID
    transaction_id: UUID
    posted_at: datetime
    amount_minor: int
    reference: str
    description: str

    @property
    def day(self) -> date:
        return self.posted_at.astimezone(UTC).date()


@dataclass(frozen=True)
class MatchPolicy:
    date_tolerance_days: int = 2
    max_group: int = 4  # entries one line may match by amount (1:n)
    max_candidates: int = 12  # entries searched for a 1:n amount match (bounds the combinations)


@dataclass
class Match:
    group: int
    rule: str  # reference | amount_date
    lines: list[StatementLine]
    entries: list[LedgerItem]

    @property
    def drift_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines) - sum(e.amount_minor for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "rule": self.rule,
            "kind": f"{'1' if len(self.lines) == 1 else 'n'}:{'1' if len(self.entries) == 1 else 'n'}",
            "lines": [line.line_no for line in self.lines],
            "entry_ids": [str(e.entry_id) for e in self.entries],
            "reference": self.lines[0].reference,
            "statement_minor": sum(line.amount_minor for line in self.lines),
            "ledger_minor": sum(e.amount_minor for e in self.entries),
            "drift_minor": self.drift_minor,
        }


@dataclass
class MatchReport:
    matches: list[Match] = field(default_factory=list)
    unmatched_lines: list[StatementLine] = field(default_factory=list)
    unmatched_entries: list[LedgerItem] = field(default_factory=list)


def _line_of_byte(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(data: bytes) -> str:
    """Raises: InvalidStatement (not UTF-8; the line of the first bad byte)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidStatement(_line_of_byte(data, exc.start), "the file is not UTF-8 text") from exc


def _amount(text: str, currency: str, line: int) -> int:
    """Signed minor units from a signed decimal in major units.

    Raises: InvalidStatement.
    """
    raw = text.strip()
    # Plain decimals only: "1e3", "NaN", "1_000" or "1,000.00" are not amounts a statement writes.
    if not _AMOUNT.fullmatch(raw):
        raise InvalidStatement(line, f"amount {text!r} is not a decimal like 1234.56 or -12.50")
    sign = -1 if raw.startswith("-") else 1
    magnitude = raw.lstrip("+-")
    try:
        minor = Money.from_major(magnitude, currency).amount_minor
    except (InvalidAmount, UnsupportedCurrency) as exc:
        raise InvalidStatement(line, f"amount {text!r} is not a {currency} amount: {exc}") from exc
    if minor == 0:
        raise InvalidStatement(line, "amount must not be zero")
    return sign * minor


def parse_statement(data: bytes, currency: str) -> list[StatementLine]:
    """The statement's lines (header checked, every field validated, currency = `currency`).

    Raises: InvalidStatement (with the line of the file at fault; the header is line 1).
    """
    reader = csv.reader(io.StringIO(_decode(data), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidStatement(1, f"malformed CSV: {exc}") from exc
    if header is None:
        raise InvalidStatement(1, "the file is empty")
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InvalidStatement(1, f"header lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    index = {c: names.index(c) for c in COLUMNS}
    lines: list[StatementLine] = []
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise InvalidStatement(reader.line_num, f"malformed CSV: {exc}") from exc
        if row is None:
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(names):
            raise InvalidStatement(line, f"expected {len(names)} fields, found {len(row)}")
        if len(lines) >= MAX_LINES:
            raise InvalidStatement(line, f"more than {MAX_LINES} lines")
        cells = {c: row[i].strip() for c, i in index.items()}
        if cells["currency"].upper() != currency:
            raise InvalidStatement(line, f"currency {cells['currency']!r}: the account is in {currency}")
        try:
            value_date = date.fromisoformat(cells["date"])
        except ValueError as exc:
            raise InvalidStatement(line, f"date {cells['date']!r} is not YYYY-MM-DD") from exc
        for name in ("reference", "description"):
            if len(cells[name]) > MAX_TEXT or "\x00" in cells[name]:
                raise InvalidStatement(line, f"{name} is longer than {MAX_TEXT} characters or holds NUL")
        lines.append(
            StatementLine(
                line,
                value_date,
                _amount(cells["amount"], currency, line),
                currency,
                cells["reference"],
                cells["description"],
            )
        )
    if not lines:
        raise InvalidStatement(max(reader.line_num, 1), "the statement has no lines")
    return lines


def match(lines: Sequence[StatementLine], items: Sequence[LedgerItem], policy: MatchPolicy) -> MatchReport:
    """Match statement lines to ledger items (pure; see the module docstring for the rules).
    Every item passed is a candidate; `unmatched_entries` lists every candidate left over."""
    report = MatchReport()
    open_lines = list(lines)
    open_items = list(items)
    group = itertools.count(1)

    # 1. reference groups
    by_ref_lines: dict[str, list[StatementLine]] = defaultdict(list)
    by_ref_items: dict[str, list[LedgerItem]] = defaultdict(list)
    for line in open_lines:
        if line.reference:
            by_ref_lines[line.reference].append(line)
    for item in open_items:
        if item.reference:
            by_ref_items[item.reference].append(item)
    for reference, ref_lines in by_ref_lines.items():
        ref_items = by_ref_items.get(reference)
        if ref_items:
            report.matches.append(Match(next(group), "reference", ref_lines, ref_items))
    used_lines = {line.line_no for m in report.matches for line in m.lines}
    used_items = {e.entry_id for m in report.matches for e in m.entries}
    open_lines = [line for line in open_lines if line.line_no not in used_lines]
    open_items = [e for e in open_items if e.entry_id not in used_items]

    window = timedelta(days=policy.date_tolerance_days)

    def near(line: StatementLine, item: LedgerItem) -> bool:
        return abs(item.day - line.value_date) <= window

    # 2a. amount and date, one to one, closest date first
    still_open: list[StatementLine] = []
    for line in open_lines:
        candidates = [e for e in open_items if e.amount_minor == line.amount_minor and near(line, e)]
        if not candidates:
            still_open.append(line)
            continue
        best = min(candidates, key=lambda e: (abs(e.day - line.value_date), e.posted_at))
        report.matches.append(Match(next(group), "amount_date", [line], [best]))
        open_items.remove(best)

    # 2b. amount and date, one line to several entries (bounded search)
    for line in still_open:
        window_items = sorted(
            (e for e in open_items if near(line, e) and (e.amount_minor > 0) == (line.amount_minor > 0)),
            key=lambda e: (abs(e.day - line.value_date), e.posted_at),
        )[: policy.max_candidates]
        found = _subset_summing(window_items, line.amount_minor, policy.max_group)
        if found is None:
            report.unmatched_lines.append(line)
            continue
        report.matches.append(Match(next(group), "amount_date", [line], list(found)))
        for e in found:
            open_items.remove(e)
    report.unmatched_entries = open_items
    return report


def _subset_summing(items: Sequence[LedgerItem], target: int, max_size: int) -> tuple[LedgerItem, ...] | None:
    for size in range(2, max_size + 1):
        for combo in itertools.combinations(items, size):
            if sum(e.amount_minor for e in combo) == target:
                return combo
    return None


# -- storage -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportResult:
    import_id: UUID
    replayed: bool
    report: dict[str, Any]


def _settlement_account(conn: Conn, account_id: UUID) -> str:
    """The account's currency.

    Raises: AccountNotFound; NotSettlementAccount.
    """
    row = conn.execute("SELECT kind, currency FROM accounts WHERE id = %s", (account_id,)).fetchone()
    if row is None:
        raise AccountNotFound(account_id)
    if row[0] != AccountKind.SETTLEMENT.value:
        raise NotSettlementAccount(f"account {account_id} is a {row[0]} account; statements reconcile settlement")
    return str(row[1])


def _ledger_items(conn: Conn, account_id: UUID, start: date, end: date, references: list[str]) -> list[LedgerItem]:
    """Entries on the account that no earlier import matched: those in [start, end] (whole
    UTC days), and those whose reference the statement names, whenever they were posted (an
    exact reference needs no date to be trusted)."""
    rows = conn.execute(
        """
        SELECT e.id, e.transaction_id, e.posted_at,
               CASE e.direction WHEN 'debit' THEN e.amount_minor ELSE -e.amount_minor END,
               coalesce(t.external_reference, ''), coalesce(t.description, '')
          FROM entries e JOIN ledger_transactions t ON t.id = e.transaction_id
         WHERE e.account_id = %s
           AND ((e.posted_at >= %s AND e.posted_at < %s) OR t.external_reference = ANY(%s))
           AND NOT EXISTS (SELECT 1 FROM statement_matches m WHERE m.entry_id = e.id)
         ORDER BY e.posted_at
        """,
        (
            account_id,
            datetime.combine(start, datetime.min.time(), UTC),
            datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
            references,
        ),
    ).fetchall()
    return [LedgerItem(*r) for r in rows]


def _report(
    import_id: UUID,
    account_id: UUID,
    currency: str,
    lines: Sequence[StatementLine],
    result: MatchReport,
    period: tuple[date, date],
    sha256: str,
) -> dict[str, Any]:
    in_period = [e for e in result.unmatched_entries if period[0] <= e.day <= period[1]]
    drifting = [m for m in result.matches if m.drift_minor]
    return {
        "id": str(import_id),
        "account_id": str(account_id),
        "currency": currency,
        "file_sha256": sha256,
        "period": {"from": period[0].isoformat(), "to": period[1].isoformat()},
        "summary": {
            "lines": len(lines),
            "matched_lines": sum(len(m.lines) for m in result.matches),
            "matched_entries": sum(len(m.entries) for m in result.matches),
            "unmatched_lines": len(result.unmatched_lines),
            "unmatched_entries": len(in_period),
            "drift_groups": len(drifting),
            "drift_minor": sum(m.drift_minor for m in drifting),
        },
        "matched": [m.as_dict() for m in result.matches],
        "unmatched_statement": [
            {
                "line": line.line_no,
                "date": line.value_date.isoformat(),
                "amount_minor": line.amount_minor,
                "reference": line.reference,
                "description": line.description,
            }
            for line in result.unmatched_lines
        ],
        "unmatched_ledger": [
            {
                "entry_id": str(e.entry_id),
                "transaction_id": str(e.transaction_id),
                "posted_at": e.posted_at.isoformat(),
                "amount_minor": e.amount_minor,
                "reference": e.reference,
                "description": e.description,
            }
            for e in in_period
        ],
        "drift": [
            {"group": m.group, "lines": [line.line_no for line in m.lines], "drift_minor": m.drift_minor}
            for m in drifting
        ],
    }


def _store(conn: Conn, import_id: UUID, lines: Sequence[StatementLine], result: MatchReport) -> None:
    group_of = {line.line_no: m.group for m in result.matches for line in m.lines}
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO statement_lines (import_id, line_no, value_date, amount_minor, currency, reference, "
            "description, match_group) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    import_id,
                    ln.line_no,
                    ln.value_date,
                    ln.amount_minor,
                    ln.currency,
                    ln.reference,
                    ln.description,
                    group_of.get(ln.line_no),
                )
                for ln in lines
            ],
        )
        cur.executemany(
            "INSERT INTO statement_matches (import_id, match_group, entry_id, rule) VALUES (%s, %s, %s, %s)",
            [(import_id, m.group, e.entry_id, m.rule) for m in result.matches for e in m.entries],
        )


def import_statement(
    conn: Conn,
    *,
    import_id: UUID,
    account_id: UUID,
    data: bytes,
    imported_by: UUID | None,
    policy: MatchPolicy | None = None,
) -> ImportResult:
    """Parse, match and store a statement in the caller's transaction; the same file again
    returns the first import's report (replayed) and writes nothing.

    Raises: AccountNotFound; NotSettlementAccount; InvalidStatement.
    """
    policy = policy or MatchPolicy()
    currency = _settlement_account(conn, account_id)
    sha256 = hashlib.sha256(data).hexdigest()
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, str(account_id)))
    earlier = conn.execute(
        "SELECT id, report FROM statement_imports WHERE account_id = %s AND file_sha256 = %s", (account_id, sha256)
    ).fetchone()
    if earlier is not None:
        return ImportResult(earlier[0], True, dict(earlier[1]))
    lines = parse_statement(data, currency)
    period = (min(line.value_date for line in lines), max(line.value_date for line in lines))
    tolerance = timedelta(days=policy.date_tolerance_days)
    references = sorted({line.reference for line in lines if line.reference})
    items = _ledger_items(conn, account_id, period[0] - tolerance, period[1] + tolerance, references)
    result = match(lines, items, policy)
    report = _report(import_id, account_id, currency, lines, result, period, sha256)
    conn.execute(
        "INSERT INTO statement_imports (id, account_id, file_sha256, currency, line_count, period_from, period_to, "
        "imported_by, report) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (import_id, account_id, sha256, currency, len(lines), period[0], period[1], imported_by, Jsonb(report)),
    )
    _store(conn, import_id, lines, result)
    return ImportResult(import_id, False, report)


def get_import(conn: Conn, import_id: UUID) -> dict[str, Any]:
    """Raises: StatementNotFound."""
    row = conn.execute("SELECT report FROM statement_imports WHERE id = %s", (import_id,)).fetchone()
    if row is None:
        raise StatementNotFound(f"statement import {import_id} not found")
    return dict(row[0])
