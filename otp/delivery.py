"""The one path every OTP message takes to the customer: a `notification.requested` outbox row.

Transfers, payees and standing orders all send their codes through `queue_otp_message`, in
the same transaction that issues the challenge (a code exists only if its message does). The
message body is a template with a `{code}` slot so that how the code travels (in clear today,
sealed once the OTP-retention work lands) is decided here, once, for every kind of challenge.
"""

from __future__ import annotations

from uuid import UUID

from ledger.db import Conn
from ledger.outbox import insert_events, make_event

CODE_SLOT = "{code}"


def queue_otp_message(
    conn: Conn,
    *,
    challenge_id: UUID,
    customer_id: str,
    subject: str,
    body_template: str,
    code: str,
    transfer_id: str | None,
) -> None:
    """Write the `notification.requested` row for one issued code (call in the issuing transaction).

    `challenge_id` keys the event (its id is derived from it, so a retried issue writes
    nothing twice) and names the OTP challenge the message belongs to; `transfer_id` is set
    for a transfer's code only (the inbox links the message to the transfer).
    """
    if CODE_SLOT not in body_template:
        raise ValueError("the OTP message template has no {code} slot")
    data: dict[str, object] = {
        "customer_id": customer_id,
        "channel": "in_app",
        "subject": subject,
        "body": body_template.replace(CODE_SLOT, code),
        "challenge_id": str(challenge_id),
    }
    if transfer_id is not None:
        data["transfer_id"] = transfer_id
    event = make_event("notification.requested", business_id=challenge_id, key=challenge_id, data=data)
    insert_events(conn, [event])
