"""Signing in with a second factor, for every suite that signs staff (or enrolled customers) in.

Staff need TOTP (mandatory), and the API accepts each time step once per principal, later steps
only. So a test that logs the same person in twice must present codes of two different steps.
`Authenticator` is what a person's phone app would be, made step-aware: it hands out the code
of the earliest step the server will still take (the current one, then the next, which the
server's one-step window accepts early) that this process has not used yet, and waits for the
clock only when both are spent (three logins of one person within 30 s). Devices are shared
per secret across the whole test process, so two helpers never hand out the same step.

`token()` retries once with the next step when the server refused a step that another process
(a chaos API client, a browser) spent first; each refusal counts against the login throttle, so
it gives up after a few.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

import httpx

from mfa import codes

STEP_S = codes.STEP_S


class Authenticator:
    """A TOTP device for one secret; `code()` never returns the same step twice."""

    _devices: ClassVar[dict[str, Authenticator]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._last_step = -1
        self._lock = threading.Lock()

    @classmethod
    def of(cls, secret_or_uri: str) -> Authenticator:
        secret = codes.secret_of_uri(secret_or_uri) if secret_or_uri.startswith("otpauth://") else secret_or_uri
        with cls._registry_lock:
            device = cls._devices.get(secret)
            if device is None:
                device = cls._devices[secret] = Authenticator(secret)
            return device

    def next_step(self) -> int:
        """Reserve the next step to use (waiting for the clock only if the window is spent)."""
        with self._lock:
            while True:
                current = codes.step_at(datetime.now(UTC))
                step = max(self._last_step + 1, current)
                if step <= current + codes.VALID_WINDOW:
                    self._last_step = step
                    return step
                # Both steps the server takes now are spent: wait for the next step to begin.
                time.sleep(max(0.05, (current + 1) * STEP_S - time.time()))

    def code(self) -> str:
        return codes.code_at(self.secret, self.next_step())

    def mark_used(self, step: int) -> None:
        with self._lock:
            self._last_step = max(self._last_step, step)


def login(
    http: httpx.Client, prefix: str, username: str, password: str, device: Authenticator | None
) -> httpx.Response:
    """POST {prefix}/auth/token with a fresh code when a device is given; the raw response."""
    data = {"username": username, "password": password}
    if device is None:
        return http.post(f"{prefix}/auth/token", data=data)
    response = http.post(f"{prefix}/auth/token", data=data | {"totp": device.code()})
    for _ in range(2):
        # Refused: the step may have been spent by another process using the same secret.
        if response.status_code != 401 or response.json().get("code") != "invalid_credentials":
            break
        response = http.post(f"{prefix}/auth/token", data=data | {"totp": device.code()})
    return response


def token(http: httpx.Client, prefix: str, username: str, password: str, device: Authenticator | None) -> str:
    """A bearer token (asserting the login succeeded)."""
    r = login(http, prefix, username, password, device)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Enrolled:
    device: Authenticator
    recovery_codes: list[str]
    otpauth_uri: str


def enrol(http: httpx.Client, prefix: str, access_token: str) -> Enrolled:
    """Enrol the token's principal (begin + confirm); the device and the recovery codes."""
    r = http.post(f"{prefix}/me/totp", headers=bearer(access_token))
    assert r.status_code == 201, r.text
    uri = str(r.json()["otpauth_uri"])
    device = Authenticator.of(str(r.json()["secret"]))
    r = http.post(f"{prefix}/me/totp/confirm", json={"code": device.code()}, headers=bearer(access_token))
    assert r.status_code == 200, r.text
    return Enrolled(device, list(r.json()["recovery_codes"]), uri)


@dataclass
class StaffMember:
    """A staff member created by an admin and enrolled, with a live token."""

    id: str
    email: str
    password: str
    role: str
    token: str
    device: Authenticator
    recovery_codes: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)

    def login(self, http: httpx.Client) -> str:
        """A new token for this member (a fresh step)."""
        return token(http, "/ops/v1", self.email, self.password, self.device)


def new_staff(http: httpx.Client, admin_token: str, role: str, *, email: str | None = None) -> StaffMember:
    """Create a staff member with `role` through the API, enrol them, and sign them in."""
    email = email or f"{role}-{uuid.uuid4().hex[:10]}@ledgerflow.test"
    password = secrets.token_urlsafe(12)
    r = http.post(
        "/ops/v1/staff", json={"email": email, "password": password, "role": role}, headers=bearer(admin_token)
    )
    assert r.status_code == 201, r.text
    staff_id = str(r.json()["staff_id"])
    first = token(http, "/ops/v1", email, password, None)  # not enrolled yet: password only
    enrolled = enrol(http, "/ops/v1", first)
    http.post("/ops/v1/auth/logout", headers=bearer(first))
    member_token = token(http, "/ops/v1", email, password, enrolled.device)
    return StaffMember(staff_id, email, password, role, member_token, enrolled.device, enrolled.recovery_codes)


def seal_keys() -> str:
    """LEDGERFLOW_SEAL_KEYS for a test stack (never a key file under the developer's home)."""
    return f"test:{secrets.token_hex(32)}"


def uri_secret(uri: str) -> str:
    return codes.secret_of_uri(uri)


__all__ = [
    "Authenticator",
    "Enrolled",
    "StaffMember",
    "bearer",
    "enrol",
    "login",
    "new_staff",
    "seal_keys",
    "token",
    "uri_secret",
]
