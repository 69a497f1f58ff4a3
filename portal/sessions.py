"""Portal sessions: a random id in an HttpOnly cookie, everything else in PostgreSQL.

Design (see also portal/__init__.py):
- The browser holds only `secrets.token_urlsafe(32)`; the API bearer token never leaves the
  server, so script injection or a leaked cookie jar cannot reach the API directly.
- The store is the `portal_sessions` table (migration 0010_shared_state), so every API
  process sees every session: a browser whose requests the kernel spreads over several
  processes stays signed in, and a process that dies logs nobody out. The routes only use
  `create`, `get`, `drop`, `expired` and `sweep`, as they did with the in-process dict.
- Nothing in the table opens a session by itself: the row is keyed by the sha256 of the
  cookie's id, the API token is sealed (security/sealed.py) under a purpose that names that
  hash (a sealed token copied to another row does not open), and the CSRF token is not stored
  at all: it is an HMAC of the session id, so only the holder of the cookie can compute it.
- A session ends after `idle_s` without a request, at the API token's own expiry (less a
  margin), or at logout (which also revokes the API token through the API). `expires_at` says
  when; the retention sweep deletes rows past it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, cast

from sqlalchemy.engine import Engine

from ledger.uow import UnitOfWork
from security.sealed import Sealer

Realm = Literal["customer", "staff"]
FlashKind = Literal["ok", "error", "info"]

IDLE_TIMEOUT_S: Final = 30 * 60
# Stop using an API token a little before it expires, so that a page never half-loads with it.
TOKEN_MARGIN_S: Final = 30
# Expired sessions removed per sweep: each one costs a token revocation, and a login waits for it.
SWEEP_BATCH: Final = 50

# The database clock by default, so every process judges one session by one clock; tests pass
# their own to move time.
Clock = Callable[[], datetime]
_NOW: Final = "COALESCE(CAST(%(now)s AS timestamptz), clock_timestamp())"
_COLUMNS: Final = "id_hash, realm, api_token_sealed, user_id, email, name, role, last_seen_at, expires_at"


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token_for(session_id: str) -> str:
    """The session's CSRF token: derived, never stored (43 characters, like the id)."""
    mac = hmac.new(session_id.encode(), b"ledgerflow/portal/csrf/v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclass
class Session:
    id: str
    realm: Realm
    api_token: str
    csrf_token: str
    expires_at: datetime  # when it ends unless used again (never past the API token's expiry)
    last_seen: datetime
    email: str
    name: str = ""
    role: str = ""  # staff only; display and navigation (the API decides what is allowed)
    user_id: str = ""  # the customer's or staff member's id
    _store: SessionStore | None = field(default=None, repr=False, compare=False)

    def flash(self, kind: FlashKind, text: str) -> None:
        """A message for the next page this session renders (after a redirect), which another
        API process may serve: it is kept with the session's row."""
        if self._store is not None:
            self._store.add_flash(self.id, kind, text)

    def take_flashes(self) -> list[tuple[str, str]]:
        return [] if self._store is None else self._store.take_flashes(self.id)


class SessionStore:
    """Sessions in `portal_sessions`; thread-safe (each call is one short unit of work)."""

    def __init__(
        self, engine: Engine, sealer: Sealer, *, idle_s: float = IDLE_TIMEOUT_S, clock: Clock | None = None
    ) -> None:
        self.idle_s = idle_s
        self._engine = engine
        self._sealer = sealer
        self._clock = clock

    def create(
        self,
        realm: Realm,
        api_token: str,
        token_ttl_s: int,
        *,
        email: str,
        name: str = "",
        role: str = "",
        user_id: str = "",
    ) -> Session:
        session_id = secrets.token_urlsafe(32)
        h = id_hash(session_id)
        with UnitOfWork(self._engine) as uow:
            row = uow.query(
                f"""
                    WITH t AS (SELECT {_NOW} AS now)
                    INSERT INTO portal_sessions (id_hash, realm, api_token_sealed, user_id, email, name, role,
                                                 created_at, last_seen_at, token_expires_at, expires_at)
                    SELECT %(h)s, %(realm)s, %(sealed)s, %(user_id)s, %(email)s, %(name)s, %(role)s, t.now, t.now,
                           t.now + make_interval(secs => %(token_s)s),
                           least(t.now + make_interval(secs => %(idle_s)s), t.now + make_interval(secs => %(token_s)s))
                      FROM t
                    RETURNING {_COLUMNS}
                    """,
                {
                    "now": self._now(),
                    "h": h,
                    "realm": realm,
                    "sealed": self._sealer.seal_text(_purpose(h), api_token),
                    "user_id": user_id,
                    "email": email,
                    "name": name,
                    "role": role,
                    "token_s": max(0, token_ttl_s - TOKEN_MARGIN_S),
                    "idle_s": self.idle_s,
                },
            ).fetchone()
            uow.commit()
        assert row is not None  # INSERT .. RETURNING
        return self._session(session_id, row)

    def get(self, session_id: str | None, realm: Realm) -> Session | None:
        """The live session of `realm` with this id (and mark it used), else None. A session of
        the other realm is None too: a customer's cookie never opens a staff page."""
        if not session_id:
            return None
        with UnitOfWork(self._engine) as uow:
            row = uow.query(
                f"""
                    WITH t AS (SELECT {_NOW} AS now)
                    UPDATE portal_sessions s
                       SET last_seen_at = t.now,
                           expires_at = least(t.now + make_interval(secs => %(idle_s)s), s.token_expires_at)
                      FROM t
                     WHERE s.id_hash = %(h)s AND s.realm = %(realm)s AND s.expires_at > t.now
                    RETURNING {", ".join("s." + c.strip() for c in _COLUMNS.split(","))}
                    """,
                {"now": self._now(), "h": id_hash(session_id), "realm": realm, "idle_s": self.idle_s},
            ).fetchone()
            uow.commit()
        return None if row is None else self._session(session_id, row)

    def drop(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with UnitOfWork(self._engine) as uow:
            row = uow.query(
                f"DELETE FROM portal_sessions WHERE id_hash = %(h)s RETURNING {_COLUMNS}",
                {"h": id_hash(session_id)},
            ).fetchone()
            uow.commit()
        return None if row is None else self._session(session_id, row)

    def expired(self, session_id: str | None) -> Session | None:
        """Remove and return the session if it exists but has timed out (so its API token can
        be revoked); None otherwise."""
        if not session_id:
            return None
        with UnitOfWork(self._engine) as uow:
            row = uow.query(
                f"DELETE FROM portal_sessions WHERE id_hash = %(h)s AND expires_at <= {_NOW} RETURNING {_COLUMNS}",
                {"h": id_hash(session_id), "now": self._now()},
            ).fetchone()
            uow.commit()
        return None if row is None else self._session(session_id, row)

    def sweep(self) -> list[Session]:
        """Remove up to SWEEP_BATCH timed-out sessions; returns them (their API tokens are to be
        revoked). Their ids are unknown here (only hashes are kept): `id` is the hash. Two
        processes sweeping at once take different rows (SKIP LOCKED)."""
        with UnitOfWork(self._engine) as uow:
            rows = uow.query(
                f"""
                    DELETE FROM portal_sessions WHERE id_hash IN (
                        SELECT id_hash FROM portal_sessions WHERE expires_at <= {_NOW}
                         ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
                    RETURNING {_COLUMNS}
                    """,
                {"now": self._now(), "batch": SWEEP_BATCH},
            ).fetchall()
            uow.commit()
        return [self._session(row.id_hash, row) for row in rows]

    def add_flash(self, session_id: str, kind: FlashKind, message: str) -> None:
        with UnitOfWork(self._engine) as uow:
            uow.execute(
                "UPDATE portal_sessions SET flashes = flashes || CAST(%(f)s AS jsonb) WHERE id_hash = %(h)s",
                {"f": json.dumps([[kind, message]]), "h": id_hash(session_id)},
            )
            uow.commit()

    def take_flashes(self, session_id: str) -> list[tuple[str, str]]:
        """The session's pending messages, cleared in the same statement (a page shows each once,
        whichever process renders it)."""
        with UnitOfWork(self._engine) as uow:
            taken = uow.query(
                """
                    UPDATE portal_sessions s SET flashes = '[]'
                      FROM (SELECT id_hash, flashes FROM portal_sessions WHERE id_hash = %(h)s FOR UPDATE) old
                     WHERE s.id_hash = old.id_hash AND old.flashes <> '[]'
                    RETURNING old.flashes
                    """,
                {"h": id_hash(session_id)},
            ).fetchone()
            uow.commit()
        return [(str(kind), str(message)) for kind, message in cast(list[list[Any]], taken[0] if taken else [])]

    def __len__(self) -> int:
        with UnitOfWork(self._engine) as uow:
            row = uow.execute("SELECT count(*) FROM portal_sessions").fetchone()
        return int(row[0])

    def _now(self) -> datetime | None:
        return None if self._clock is None else self._clock()

    def _session(self, session_id: str, row: Any) -> Session:
        return Session(
            id=session_id,
            realm=row.realm,
            api_token=self._sealer.open_text(_purpose(row.id_hash), row.api_token_sealed),
            csrf_token=csrf_token_for(session_id),
            expires_at=row.expires_at,
            last_seen=row.last_seen_at,
            email=row.email,
            name=row.name,
            role=row.role,
            user_id=row.user_id,
            _store=self,
        )


def _purpose(h: str) -> str:
    return f"portal-api-token:{h}"
