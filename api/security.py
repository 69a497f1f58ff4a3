"""Passwords (argon2id) and opaque bearer tokens (stored as sha256, with realm and expiry).

Tokens are random, not signed: the database is the only authority on whether one is valid,
so revoking one takes effect on the next request. A token has 256 bits of entropy, so a plain
sha256 of it is enough for storage (a slow hash only matters for guessable secrets).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Row

CUSTOMER: Final = "customer"
STAFF: Final = "staff"
REALMS: Final = (CUSTOMER, STAFF)

TOKEN_TTL_S: Final = {CUSTOMER: 3600, STAFF: 8 * 3600}

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as much time as a wrong
# password and response timing does not tell which usernames exist.
_DUMMY_HASH: Final = _hasher.hash("ledgerflow-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


def issue_token(conn: Connection, realm: str, principal_id: UUID) -> IssuedToken:
    token = secrets.token_urlsafe(32)
    ttl_s = TOKEN_TTL_S[realm]
    conn.execute(
        text(
            "INSERT INTO auth_tokens (token_hash, realm, principal_id, created_at, expires_at) "
            "VALUES (:h, :realm, :pid, now(), :exp)"
        ),
        {
            "h": _token_hash(token),
            "realm": realm,
            "pid": principal_id,
            "exp": datetime.now(UTC) + timedelta(seconds=ttl_s),
        },
    )
    return IssuedToken(access_token=token, expires_in=ttl_s)


def resolve_principal(conn: Connection, token: str) -> Row[Any] | None:
    """The live token's principal, in one round trip (every authenticated request asks), or
    None if the token is unknown, expired or revoked, or its principal is gone.

    The row: `realm`, `id`, `email`, `full_name` (customers), `role` (staff) and
    `mfa_enabled` (a second factor is on).
    """
    row = conn.execute(
        text(
            "SELECT t.realm, COALESCE(c.id, s.id) AS id, COALESCE(c.email, s.email) AS email, c.full_name, s.role, "
            "EXISTS (SELECT 1 FROM totp_credentials x WHERE x.realm = t.realm "
            "AND x.principal_id = t.principal_id AND x.enabled_at IS NOT NULL) AS mfa_enabled "
            "FROM auth_tokens t "
            "LEFT JOIN customers c ON t.realm = :customer AND c.id = t.principal_id "
            "LEFT JOIN staff s ON t.realm = :staff AND s.id = t.principal_id "
            "WHERE t.token_hash = :h AND t.revoked_at IS NULL AND t.expires_at > now()"
        ),
        {"h": _token_hash(token), "customer": CUSTOMER, "staff": STAFF},
    ).first()
    return None if row is None or row.id is None else row


def revoke_token(conn: Connection, token: str) -> bool:
    result = conn.execute(
        text("UPDATE auth_tokens SET revoked_at = now() WHERE token_hash = :h AND revoked_at IS NULL"),
        {"h": _token_hash(token)},
    )
    return bool(result.rowcount)
