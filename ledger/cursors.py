"""The keyset cursor of every newest-first list (statement entries, transfers, reconciliation
runs, reversals): the last row's (time, id), opaque to the client.

One codec for all of them, so a cursor reads the same way whichever list handed it out, and a
cursor from one list given to another fails the same way (InvalidCursor, a ValueError).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from uuid import UUID

from ledger.errors import InvalidCursor


def encode(at: datetime, row_id: UUID) -> str:
    """URL-safe base64 of `<UTC ISO time>|<uuid>`, unpadded."""
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    """Raises: InvalidCursor (a ValueError) when `cursor` is not one `encode` made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, id_text = raw.split("|")
        return datetime.fromisoformat(at_text), UUID(id_text)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursor(f"invalid cursor: {cursor!r}") from exc
