"""Identifiers: time-ordered UUIDv7 for new rows, deterministic UUIDv5 for derived ones.

Derived ids are what make retries harmless: the event announcing that transfer X posted
has the same id every time any process computes it, so a second insert is a no-op; the
`settlement:USD` house account has the same id in every process, so nobody needs to look
it up before posting a deposit.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Final
from uuid import UUID

# Fixed namespace of every UUIDv5 the ledger derives; changing it would fork every id.
LEDGER_NAMESPACE: Final = UUID("6b6c3f0e-2a8e-4d0c-9a51-1f0a4f6d8e21")

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit per-millisecond counter,
    then 62 random bits. Monotonic within this process, so ids made in a row sort in order.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next millisecond
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return UUID(int=value)


def derived_id(*parts: object) -> UUID:
    """Deterministic UUIDv5 of the parts, joined with ':'."""
    return uuid.uuid5(LEDGER_NAMESPACE, ":".join(str(p) for p in parts))


def event_id(business_id: UUID, event_type: str, *discriminators: object) -> UUID:
    """Id of the outbox event `event_type` about `business_id` (a transfer, deposit or account).

    Discriminators separate events of one type that legitimately repeat (an account's
    status changes, keyed by the new version).
    """
    return derived_id(business_id, event_type, *discriminators)


def house_account_id(kind: str, currency: str) -> UUID:
    """Id of the house account `kind` (settlement, fx_liquidity, fx_revenue) in `currency`."""
    return derived_id("house", kind, currency)
