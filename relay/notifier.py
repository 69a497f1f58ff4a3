"""The notifier: `notification.requested` events delivered through a customer channel.

The in-app inbox (the `notifications` table behind GET /v1/notifications) is the only channel
today. SMS or e-mail adapters implement `Channel` and are passed to `Notifier`; the event's
`data.channel` picks one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol
from uuid import UUID

from ledger.db import Conn
from otp.delivery import sealed_code_of
from relay.envelope import Event, data_text, data_uuid
from relay.topics import NOTIFICATIONS

log = logging.getLogger(__name__)

IN_APP: Final = "in_app"
NOTIFICATION_REQUESTED: Final = "notification.requested"


@dataclass(frozen=True)
class Notification:
    id: UUID  # the event id: delivering the same event twice names the same notification
    customer_id: UUID
    channel: str
    subject: str
    body: str
    transfer_id: UUID | None
    created_at: datetime
    # An OTP message: its challenge and its code, sealed (otp/delivery.py); never the clear code.
    otp_challenge_ref: str | None = None
    code_sealed: str | None = None


class Channel(Protocol):
    """A way to reach a customer.

    `deliver` runs inside the notifier's transaction, with the event's dedup row. An adapter
    that calls an outside service (SMS, e-mail) cannot join that transaction, so it must pass
    `notification.id` to the provider as its idempotency key: a redelivery after a crash
    between the send and the commit then costs no second message. An OTP message carries its
    code sealed (`code_sealed`, otp/delivery.py): such an adapter opens it with the seal key at
    the moment of sending and keeps nothing in clear.
    """

    @property
    def name(self) -> str: ...

    def deliver(self, conn: Conn, notification: Notification) -> None: ...


class InAppChannel:
    """Writes the notification to the customer's in-app inbox."""

    name = IN_APP

    def deliver(self, conn: Conn, notification: Notification) -> None:
        conn.execute(
            "INSERT INTO notifications (id, customer_id, channel, subject, body, transfer_id, created_at, "
            "otp_challenge_ref, code_sealed) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (
                notification.id,
                notification.customer_id,
                IN_APP,
                notification.subject,
                notification.body,
                notification.transfer_id,
                notification.created_at,
                notification.otp_challenge_ref,
                notification.code_sealed,
            ),
        )


class Notifier:
    """Consumer of ledgerflow.notifications (a `relay.consumer.Handler`)."""

    name = "notifier"
    topics: Sequence[str] = (NOTIFICATIONS,)

    def __init__(self, channels: Sequence[Channel] = ()) -> None:
        by_name: dict[str, Channel] = {IN_APP: InAppChannel()}
        by_name.update({channel.name: channel for channel in channels})
        self.channels: Mapping[str, Channel] = by_name

    def handles(self, event_type: str) -> bool:
        return event_type == NOTIFICATION_REQUESTED

    def apply(self, conn: Conn, event: Event) -> None:
        """Deliver the requested notification.

        Raises:
            MalformedEvent: customer_id, subject or body missing, or an id not a UUID.
        """
        customer_id = data_uuid(event.data, "customer_id")
        assert customer_id is not None  # required=True
        requested = str(event.data.get("channel") or IN_APP)
        channel = self.channels.get(requested)
        if channel is None:
            # An OTP that reaches nobody fails the transfer; the inbox is always there.
            log.warning("no %r channel configured; delivering notification %s in-app", requested, event.id)
            channel = self.channels[IN_APP]
        # Stored sealed as it came: the notifier never opens an in-app code.
        sealed = sealed_code_of(event.data)
        notification = Notification(
            id=event.id,
            customer_id=customer_id,
            channel=channel.name,
            subject=data_text(event.data, "subject"),
            body=data_text(event.data, "body"),
            transfer_id=data_uuid(event.data, "transfer_id", required=False),
            created_at=event.time,
            otp_challenge_ref=sealed.challenge_ref if sealed else None,
            code_sealed=sealed.code_sealed if sealed else None,
        )
        channel.deliver(conn, notification)
