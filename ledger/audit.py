"""The audit trail: who did what, when, to what, with the state before and after.

Append-only twice over: the database refuses UPDATE, DELETE and TRUNCATE on `audit_log` (a
trigger, see migration 0004_api), and every row carries `hash = sha256(prev_hash || canonical
JSON of the row)`, so editing, deleting or inserting a row behind the API's back breaks the
chain at that row, and `verify` names it.

Rows are chained in one order: `record` takes a transaction-scoped advisory lock before it
reads the last hash, so two concurrent writers cannot both extend the same predecessor. Call
it late in a transaction (or in a transaction of its own) to keep that lock short.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

GENESIS_HASH: Final = "0" * 64
# pg_advisory_xact_lock key that serialises appends to the chain ("audit" in ASCII).
_CHAIN_LOCK: Final = 0x61756469740000

_COLUMNS: Final = (
    "id",
    "at",
    "actor_realm",
    "actor_id",
    "actor_email",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "before",
    "after",
    "detail",
    "ip",
)


@dataclass(frozen=True)
class Actor:
    """Who acted: a staff member, a customer, someone unauthenticated, or the system itself."""

    realm: str  # staff | customer | anonymous | system
    id: str | None = None
    email: str | None = None


SYSTEM: Final = Actor("system")
ANONYMOUS: Final = Actor("anonymous")


def _clean(value: Any) -> Any:
    """Plain JSON values, as jsonb will give them back (PostgreSQL refuses NUL in text and jsonb)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    # UUIDs, Decimals (FX rates travel as strings anyway), enums: their string form.
    return str(value)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _row_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(fields)).hexdigest()


def _hashed_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: row[name] for name in _COLUMNS}
    fields["at"] = row["at"].astimezone(UTC).isoformat()
    return fields


def record(
    conn: Connection,
    *,
    actor: Actor,
    action: str,
    outcome: str = "ok",
    target_type: str | None = None,
    target_id: object | None = None,
    before: Any = None,
    after: Any = None,
    detail: Any = None,
    ip: str | None = None,
) -> int:
    """Append one row to the audit chain inside `conn`'s transaction; returns its id."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = conn.execute(text("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")).scalar()
    prev_hash = str(prev) if prev is not None else GENESIS_HASH
    row_id = int(conn.execute(text("SELECT nextval('audit_log_id_seq')")).scalar_one())
    row: dict[str, Any] = {
        "id": row_id,
        # Microsecond precision is what timestamptz keeps, so the hash survives the round trip.
        "at": datetime.now(UTC),
        "actor_realm": _clean(actor.realm),
        "actor_id": _clean(actor.id),
        "actor_email": _clean(actor.email),
        "action": _clean(action),
        "outcome": outcome,
        "target_type": _clean(target_type),
        "target_id": None if target_id is None else _clean(str(target_id)),
        "before": _clean(before),
        "after": _clean(after),
        "detail": _clean(detail),
        "ip": _clean(ip),
    }
    digest = _row_hash(prev_hash, _hashed_fields(row))
    params = dict(row)
    for name in ("before", "after", "detail"):
        params[name] = None if row[name] is None else canonical_json(row[name]).decode()
    conn.execute(
        text(
            """
            INSERT INTO audit_log (id, at, actor_realm, actor_id, actor_email, action, outcome, target_type,
                                   target_id, before, after, detail, ip, prev_hash, hash)
            VALUES (:id, :at, :actor_realm, :actor_id, :actor_email, :action, :outcome, :target_type,
                    :target_id, CAST(:before AS jsonb), CAST(:after AS jsonb), CAST(:detail AS jsonb), :ip,
                    :prev_hash, :hash)
            """
        ),
        {**params, "prev_hash": prev_hash, "hash": digest},
    )
    return row_id


def verify(conn: Connection) -> int | None:
    """Walk the chain from the start; the id of the first row that does not check out, or None."""
    expected_prev = GENESIS_HASH
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(
        text(f"SELECT {', '.join(_COLUMNS)}, prev_hash, hash FROM audit_log ORDER BY id")
    )
    for row in result.mappings():
        if row["prev_hash"] != expected_prev or row["hash"] != _row_hash(row["prev_hash"], _hashed_fields(dict(row))):
            return int(row["id"])
        expected_prev = row["hash"]
    return None
