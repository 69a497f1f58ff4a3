"""Account statement as CSV for a period [start, end): the opening balance (the ledger's
balance as of just before `start`), every entry oldest first with its running balance, then
the closing balance (as of just before `end`).

The whole export reads one REPEATABLE READ snapshot, so a posting committing while the file
streams is either wholly in it or not at all, and opening + entries = closing holds for the
file as written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Engine

from ledger.balances import balance_as_of
from ledger.errors import AccountNotFound
from ledger.money import Money
from recon.checks import snapshot

HEADER: Final = (
    "row_type",
    "posted_at",
    "entry_id",
    "transaction_id",
    "transfer_id",
    "kind",
    "direction",
    "amount_minor",
    "amount",
    "currency",
    "balance_after_minor",
    "external_reference",
    "description",
)
_BATCH: Final = 1000
_ONE_US: Final = timedelta(microseconds=1)
# Spreadsheets run a cell that starts with one of these as a formula; descriptions come from
# customers, so such a cell is written with a leading quote (OWASP "CSV injection").
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def _line(values: dict[str, Any]) -> str:
    """One CSV line; columns of HEADER not in `values` are empty."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell(values.get(name)) for name in HEADER])
    return buffer.getvalue()


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def statement_csv(engine: Engine, account_id: UUID, start: datetime, end: datetime) -> Iterator[str]:
    """The CSV, line by line. The account is checked before the first line is produced, so
    call `next()` once (or use `open_statement`) to get AccountNotFound before streaming.

    Raises: AccountNotFound.
    """
    start, end = _utc(start), _utc(end)
    with snapshot(engine) as conn:
        opening = balance_as_of(conn, account_id, start - _ONE_US)
        currency = opening.currency
        yield _line({name: name for name in HEADER})
        yield _line(
            {
                "row_type": "opening_balance",
                "posted_at": start,
                "currency": currency,
                "balance_after_minor": opening.ledger_minor,
            }
        )
        after: tuple[datetime, UUID] | None = None
        while True:
            keyset = "AND (e.posted_at, e.id) > (%(at)s, %(eid)s)" if after else ""
            rows = conn.execute(
                f"""
                SELECT e.posted_at, e.id, e.transaction_id, t.transfer_id, t.kind, e.direction, e.amount_minor,
                       e.currency, e.balance_after_minor, t.external_reference, t.description
                  FROM entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                 WHERE e.account_id = %(account)s AND e.posted_at >= %(start)s AND e.posted_at < %(end)s {keyset}
                 ORDER BY e.posted_at, e.id
                 LIMIT %(n)s
                """,
                {
                    "account": account_id,
                    "start": start,
                    "end": end,
                    "n": _BATCH,
                    "at": after[0] if after else None,
                    "eid": after[1] if after else None,
                },
            ).fetchall()
            for r in rows:
                posted_at, entry_id, txn, transfer, kind, direction, amount, ccy, balance, ref, desc = r
                yield _line(
                    {
                        "row_type": "entry",
                        "posted_at": posted_at,
                        "entry_id": entry_id,
                        "transaction_id": txn,
                        "transfer_id": transfer,
                        "kind": kind,
                        "direction": direction,
                        "amount_minor": amount,
                        "amount": Money(amount, ccy).to_major(),
                        "currency": ccy,
                        "balance_after_minor": balance,
                        "external_reference": ref,
                        "description": desc,
                    }
                )
            if len(rows) < _BATCH:
                break
            after = (rows[-1][0], rows[-1][1])
        closing = balance_as_of(conn, account_id, end - _ONE_US)
        yield _line(
            {
                "row_type": "closing_balance",
                "posted_at": end,
                "currency": currency,
                "balance_after_minor": closing.ledger_minor,
            }
        )


def open_statement(engine: Engine, account_id: UUID, start: datetime, end: datetime) -> Iterator[str]:
    """`statement_csv` with its first line already produced: the account check has run.

    Raises: AccountNotFound.
    """
    lines = statement_csv(engine, account_id, start, end)
    try:
        first = next(lines)
    except StopIteration as exc:  # pragma: no cover - the header always comes first
        raise AccountNotFound(account_id) from exc

    def chain() -> Iterator[str]:
        yield first
        yield from lines

    return chain()
