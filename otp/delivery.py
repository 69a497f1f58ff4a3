"""The one path every OTP message takes: a `notification.requested` outbox row whose code is sealed.

The code never travels or rests in clear (docs/design.md invariant 9). The message's `body` holds
the mask `CODE_SLOT` where the code belongs, and `data.otp.code_sealed` holds the code sealed
with security/sealed.py (AES-256-GCM, key id, purpose bound to the challenge). The relay, Kafka
and the notifier only ever see the sealed value; the inbox stores it as it came, and the API
opens it on the fly for the inbox's owner while the challenge can still be used
(`reveal`). Once it cannot (used, locked, expired, the transfer cancelled) the body shows the
mask and a word saying why, and the retention sweep erases the sealed value itself.

Why sealing rather than a key the notifier alone holds: the notifier's only channel is the
in-app inbox, which the API reads, so the API must be able to open the code anyway; one seal
keyring (rotated like the payload keys) serves both, and the purpose names the challenge, so a
sealed code copied into another row or another customer's inbox does not open there. An SMS or
e-mail adapter opens it in the notifier, at the moment of sending, and keeps nothing.

Transfers call `request_otp_message` today; payees and standing orders call it the same way,
each with its own `challenge_ref`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from ledger.db import Conn
from ledger.outbox import OutboxEvent, insert_events, make_event

NOTIFICATION_REQUESTED: Final = "notification.requested"
# Where the code goes in the body: what anyone sees who cannot (or may no longer) see the code.
CODE_SLOT: Final = "\u2022" * 6
PURPOSE_PREFIX: Final = "otp-code"


class SealsText(Protocol):
    """What this module needs of security.sealed.Sealer (the domain imports no key handling)."""

    def seal_text(self, purpose: str, plaintext: str) -> str: ...

    def open_text(self, purpose: str, value: str) -> str: ...


def purpose_for(challenge_ref: str) -> str:
    """The seal purpose: bound to one challenge, so the sealed code opens only for it."""
    return f"{PURPOSE_PREFIX}:{challenge_ref}"


@dataclass(frozen=True)
class OtpMessage:
    """One OTP message to a customer. `body` must contain CODE_SLOT exactly once."""

    customer_id: UUID
    challenge_ref: str  # the otp_challenges key (the transfer id for transfers)
    subject: str
    body: str
    expires_at: datetime
    transfer_id: UUID | None = None
    channel: str = "in_app"


class MalformedOtpMessage(ValueError):
    """The body has no place for the code (or more than one)."""


def build_event(sealer: SealsText, message: OtpMessage, code: str, *, business_id: UUID) -> OutboxEvent:
    """The `notification.requested` event for `message`, the code sealed.

    Raises:
        MalformedOtpMessage: the body does not contain CODE_SLOT exactly once.
    """
    if message.body.count(CODE_SLOT) != 1:
        raise MalformedOtpMessage("an OTP message body needs exactly one code slot")
    data: dict[str, Any] = {
        "customer_id": message.customer_id,
        "channel": message.channel,
        "subject": message.subject,
        "body": message.body,
        "transfer_id": message.transfer_id,
        "otp": {
            "challenge_ref": message.challenge_ref,
            "code_sealed": sealer.seal_text(purpose_for(message.challenge_ref), code),
            "expires_at": message.expires_at,
        },
    }
    # Keyed by the challenge (the transfer id for transfers): its events stay in order on Kafka.
    return make_event(NOTIFICATION_REQUESTED, business_id=business_id, key=message.challenge_ref, data=data)


def request_otp_message(conn: Conn, sealer: SealsText, message: OtpMessage, code: str, *, business_id: UUID) -> bool:
    """Write the OTP message's outbox row on `conn`, inside the caller's transaction (the one
    that issues the challenge: a code exists only if its message does). True if it was new.

    Raises:
        MalformedOtpMessage: the body does not contain CODE_SLOT exactly once.
    """
    return insert_events(conn, [build_event(sealer, message, code, business_id=business_id)]) == 1


@dataclass(frozen=True)
class SealedCode:
    """What the inbox keeps of an OTP message's code."""

    challenge_ref: str
    code_sealed: str | None  # None once redacted


def sealed_code_of(data: Mapping[str, Any]) -> SealedCode | None:
    """The sealed code of a `notification.requested` event's data, if it carries one."""
    otp = data.get("otp")
    if not isinstance(otp, Mapping):
        return None
    ref, sealed = otp.get("challenge_ref"), otp.get("code_sealed")
    if not isinstance(ref, str) or not isinstance(sealed, str):
        return None
    return SealedCode(ref, sealed)


def reveal(sealer: SealsText, body: str, challenge_ref: str, code_sealed: str | None, *, usable: str | None) -> str:
    """The body as its owner may see it now.

    `usable` is None while the challenge can be used (the code is opened into its slot), or
    the word that says why not ("used", "expired"): the slot stays masked and says so. The
    caller is responsible for showing this only to the message's owner.
    """
    if CODE_SLOT not in body:
        return body  # not an OTP message, or one from before codes were sealed (redacted)
    if usable is None and code_sealed is not None:
        return body.replace(CODE_SLOT, sealer.open_text(purpose_for(challenge_ref), code_sealed), 1)
    return body.replace(CODE_SLOT, f"{CODE_SLOT} ({usable or 'expired'})", 1)


def open_code(sealer: SealsText, data: Mapping[str, Any]) -> str | None:
    """The clear code of a `notification.requested` event's data (None if it carries none):
    for a channel adapter at the moment it sends (SMS, e-mail), never to be stored.

    Raises:
        security.sealed.UnsealError: the sealed value does not open (other key, other challenge).
    """
    sealed = sealed_code_of(data)
    if sealed is None or sealed.code_sealed is None:
        return None
    return sealer.open_text(purpose_for(sealed.challenge_ref), sealed.code_sealed)
