"""ledger/cursors.py: the one keyset cursor of the newest-first lists."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger import cursors
from ledger.errors import InvalidCursor
from ledger.ids import uuid7


def test_round_trip_in_utc() -> None:
    row_id = uuid7()
    at = datetime(2026, 12, 3, 17, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    cursor = cursors.encode(at, row_id)
    assert "=" not in cursor and "|" not in cursor, "opaque and URL-safe"
    decoded_at, decoded_id = cursors.decode(cursor)
    assert decoded_id == row_id
    assert decoded_at == at and decoded_at.tzinfo is not None and decoded_at.utcoffset() == timedelta(0)
    assert decoded_at == at.astimezone(UTC)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !",
        base64.urlsafe_b64encode(b"2026-12-03T17:00:00+00:00").decode(),  # no id
        base64.urlsafe_b64encode(b"yesterday|" + str(uuid7()).encode()).decode(),
        base64.urlsafe_b64encode(b'["json", "list"]').decode(),  # api/pagination's own format
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        cursors.decode(cursor)
    with pytest.raises(ValueError):  # what recon's callers catch
        cursors.decode(cursor)
