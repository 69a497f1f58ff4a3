"""Opaque keyset cursors for `{items, next_cursor}` lists.

A cursor is the sort key of the last item returned, as URL-safe base64 of a small JSON array.
It is opaque to clients but not secret: every list query is still filtered by who is asking,
so a hand-made cursor can only move within what the caller may see anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Final

from fastapi import Query

from api.problems import Problem

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1..200")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from a previous page")]


def encode(*values: Any) -> str:
    raw = json.dumps([str(v) if not isinstance(v, (int, str)) or isinstance(v, bool) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str | None, arity: int) -> list[Any] | None:
    """The values encoded in `cursor` (None for the first page).

    Raises:
        Problem: 422 invalid_cursor when it is not one of ours.
    """
    if cursor is None or cursor == "":
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != arity:
        raise Problem(422, "invalid_cursor", "Invalid cursor", "The cursor is not one this list handed out.")
    return values


def decode_as(cursor: str | None, *parsers: Any) -> list[Any] | None:
    """Like `decode`, each value passed through its parser (uuid.UUID, datetime.fromisoformat, int).

    Raises:
        Problem: 422 invalid_cursor.
    """
    values = decode(cursor, len(parsers))
    if values is None:
        return None
    try:
        return [parse(v) for parse, v in zip(parsers, values, strict=True)]
    except (ValueError, TypeError, OverflowError) as exc:
        raise Problem(422, "invalid_cursor", "Invalid cursor", "The cursor is not one this list handed out.") from exc


def bigint(value: Any) -> int:
    """A cursor value that must fit PostgreSQL's bigint (anything else is not our cursor)."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise ValueError("not a bigint")
    return value
