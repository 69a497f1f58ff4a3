"""The second step of a password login: TOTP or a recovery code, for principals who enabled it.

Called by api/login.py inside the login's transaction, after the password passed and under the
username's throttle lock, so a spent time step, a spent recovery code, the failure count and
the audit rows commit together with the login's outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.engine import Connection

from ledger import audit
from mfa import store
from security.sealed import Sealer

OK: Final = "ok"
# Right password, TOTP on, no code sent: 401 mfa_required (the client asks for the code).
MISSING: Final = "mfa_required"
# Right password, wrong or replayed code: answered as invalid_credentials, counted as a failed
# login; the audit log keeps this reason.
INVALID: Final = "invalid_second_factor"


def check(
    conn: Connection,
    sealer: Sealer,
    *,
    realm: str,
    principal: object,
    code: str | None,
    ip: str,
    now: datetime,
) -> str:
    """OK, MISSING or INVALID for `principal` (a row with `id` and `email`) and `code`."""
    principal_id = principal.id  # type: ignore[attr-defined]
    if not store.status(conn, realm, principal_id).enabled:
        # No second factor to check (staff without one may then only enrol: api/deps.py).
        return OK
    if code is None or not code.strip():
        return MISSING
    factor = store.verify(conn, sealer, realm=realm, principal_id=principal_id, code=code, now=now)
    if factor is None:
        return INVALID
    if factor == "recovery_code":
        audit.record(
            conn,
            actor=audit.Actor(realm, str(principal_id), principal.email),  # type: ignore[attr-defined]
            action="mfa.recovery_code_used",
            target_type=realm,
            target_id=principal_id,
            detail={"context": "login", "left": store.recovery_codes_left(conn, realm, principal_id)},
            ip=ip,
        )
    return OK
