"""Pure TOTP and recovery-code logic (no I/O): what `mfa.store` and the API build on.

TOTP is RFC 6238 as authenticator apps implement it: SHA-1, 6 digits, 30 s steps. A code is
accepted for the current step and one step either side (clock drift), and the caller records
the step it matched so that no step is ever accepted twice for one principal.

Recovery codes carry 80 random bits (16 base32 characters, shown in groups of four), so a plain
sha256 is enough to store them: like the API's bearer tokens, they cannot be guessed offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Final

import pyotp

ISSUER: Final = "Ledgerflow"
DIGITS: Final = 6
STEP_S: Final = 30
# One step either side of the server's: an authenticator's clock a little fast or slow, or a
# code typed just as it turned over, still works.
VALID_WINDOW: Final = 1
RECOVERY_CODE_COUNT: Final = 10
_RECOVERY_BYTES: Final = 10  # 80 bits -> 16 base32 characters
_RECOVERY_GROUP: Final = 4


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app imports (as a QR code or typed)."""
    return str(_totp(secret).provisioning_uri(name=account, issuer_name=ISSUER))


def secret_of_uri(uri: str) -> str:
    """The secret of an `otpauth://` URI (for the dev tooling that reads the dev admin's file).

    Raises:
        ValueError: not a TOTP URI with a secret.
    """
    parsed = pyotp.parse_uri(uri)
    if not isinstance(parsed, pyotp.TOTP):
        raise ValueError("not an otpauth://totp URI")
    return str(parsed.secret)


def is_totp_code(value: str) -> bool:
    return len(value) == DIGITS and value.isascii() and value.isdigit()


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_S


def code_at(secret: str, step: int) -> str:
    return str(_totp(secret).generate_otp(step))


def now_code(secret: str, now: datetime) -> str:
    return code_at(secret, step_at(now))


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the window whose code is `code`, else None.

    Every candidate is compared (constant time each), so timing does not tell which one matched.
    """
    if not is_totp_code(code):
        return None
    current = step_at(now)
    found: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step).encode(), code.encode()) and found is None:
            found = step
    return found


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """`count` distinct codes like `k3vq-7a2m-x9pd-4ftw` (lower case, no padding)."""
    codes: set[str] = set()
    while len(codes) < count:
        raw = base64.b32encode(secrets.token_bytes(_RECOVERY_BYTES)).decode().lower()
        codes.add("-".join(raw[i : i + _RECOVERY_GROUP] for i in range(0, len(raw), _RECOVERY_GROUP)))
    return sorted(codes)


def normalise_recovery_code(value: str) -> str:
    """What a person may type: any case, with or without the dashes or spaces."""
    return "".join(ch for ch in value.lower() if ch.isalnum())


def recovery_code_hash(realm: str, principal_id: str, code: str) -> str:
    """sha256 bound to the principal, so one principal's hash is useless for another."""
    message = f"ledgerflow/recovery/v1\x1f{realm}\x1f{principal_id}\x1f{normalise_recovery_code(code)}"
    return hashlib.sha256(message.encode()).hexdigest()
