"""Portal sessions: a random id in an HttpOnly cookie, everything else on the server.

Design (see also portal/__init__.py):
- The browser holds only `secrets.token_urlsafe(32)`; the API bearer token never leaves the
  server, so script injection or a leaked cookie jar cannot reach the API directly.
- The store is an in-process dict. It is per process: with several API processes behind a
  load balancer a session exists only in the process that made it, and a restart logs
  everybody out. That suits the single uvicorn process `ledgerflow up` runs; a multi-process
  deployment would move `SessionStore` to a shared table (one migration) without touching
  the routes, which only use `create`, `get` and `drop`.
- A session ends after `idle_s` without a request, at the API token's own expiry, or at
  logout (which also revokes the API token through the API).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

Realm = Literal["customer", "staff"]

IDLE_TIMEOUT_S: Final = 30 * 60
# Stop using an API token a little before it expires, so that a page never half-loads with it.
TOKEN_MARGIN_S: Final = 30


@dataclass
class Session:
    id: str
    realm: Realm
    api_token: str
    csrf_token: str
    expires_at: float  # absolute (monotonic clock): the API token's expiry
    last_seen: float
    email: str
    name: str = ""
    role: str = ""  # staff only; display and navigation (the API decides what is allowed)
    user_id: str = ""  # the customer's or staff member's id
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: Literal["ok", "error", "info"], text: str) -> None:
        """A message for the next page this session renders (after a redirect)."""
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Thread-safe: the API's sync routes run in a thread pool and may share the process."""

    def __init__(self, idle_s: float = IDLE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

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
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            realm=realm,
            api_token=api_token,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + max(0, token_ttl_s - TOKEN_MARGIN_S),
            last_seen=now,
            email=email,
            name=name,
            role=role,
            user_id=user_id,
        )
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, realm: Realm) -> Session | None:
        """The live session of `realm` with this id (and mark it used), else None. A session of
        the other realm is None too: a customer's cookie never opens a staff page."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.realm != realm:
                return None
            if self._expired(session, now):
                return None
            session.last_seen = now
            return session

    def drop(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(session_id, None)

    def expired(self, session_id: str | None) -> Session | None:
        """Remove and return the session if it exists but has timed out (so its API token can
        be revoked); None otherwise."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and self._expired(session, now):
                return self._sessions.pop(session_id)
        return None

    def sweep(self) -> list[Session]:
        """Remove every timed-out session; returns them (their API tokens are to be revoked)."""
        now = self._clock()
        with self._lock:
            gone = [s for s in self._sessions.values() if self._expired(s, now)]
            for s in gone:
                del self._sessions[s.id]
        return gone

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_s or now >= session.expires_at
