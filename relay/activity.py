"""The transfer-events projection: a per-customer activity feed and counts per event type.

Each transfer or account event becomes one feed line per customer it concerns: the payer
always, and for money that arrives (posted, reversed) the payee too when that is another
customer. The payee is found through the ledger's `accounts` table, which lives in the
same database (the events name accounts, not their owners).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.db import Conn
from ledger.errors import LedgerError
from ledger.money import Money
from relay.envelope import Event, MalformedEvent, data_uuid
from relay.topics import ACCOUNTS, TRANSFERS

_TRANSFER_VERBS = {
    "transfer.initiated": "Transfer started",
    "transfer.posted": "Transfer completed",
    "transfer.failed": "Transfer failed",
    "transfer.cancelled": "Transfer cancelled",
    "transfer.expired": "Transfer expired",
    "transfer.rejected": "Transfer rejected",
    "transfer.reversed": "Transfer reversed",
}
_ACCOUNT_TYPES = frozenset({"account.opened", "account.deposited", "account.status_changed"})
# Events after which the destination account's owner has seen money move.
_PAYEE_SEES = frozenset({"transfer.posted", "transfer.reversed"})


def format_amount(amount_minor: Any, currency: Any) -> str:
    """'12.34 USD' from minor units; the raw values when they are not valid money.

    The decimal point comes from the currency's ISO 4217 exponent, never from a float.
    """
    try:
        major: Decimal = Money(int(amount_minor), str(currency)).to_major()
    except (LedgerError, TypeError, ValueError):
        return f"{amount_minor} {currency} (minor units)"
    return f"{major:f} {currency}"


class ActivityProjection:
    """Consumer of ledgerflow.transfers and ledgerflow.accounts (a `relay.consumer.Handler`)."""

    name = "activity"
    topics: Sequence[str] = (TRANSFERS, ACCOUNTS)

    def handles(self, event_type: str) -> bool:
        # Only the types of the event contract: anything else on these topics (a future
        # type, the relay benchmark's synthetic events) is not this feed's business.
        return event_type in _TRANSFER_VERBS or event_type in _ACCOUNT_TYPES

    def apply(self, conn: Conn, event: Event) -> None:
        """Write the event's feed lines.

        Raises:
            MalformedEvent: the ids the feed needs are missing or not UUIDs.
        """
        if event.type.startswith("transfer."):
            lines = self._transfer_lines(conn, event)
        else:
            lines = self._account_lines(conn, event)
        for customer_id, transfer_id, summary in lines:
            conn.execute(
                "INSERT INTO activity_feed (event_id, customer_id, transfer_id, type, summary, occurred_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (event.id, customer_id, transfer_id, event.type, summary, event.time),
            )

    def _transfer_lines(self, conn: Conn, event: Event) -> list[tuple[UUID, UUID | None, str]]:
        data = event.data
        transfer_id = data_uuid(data, "transfer_id")
        payer = data_uuid(data, "customer_id")
        assert payer is not None  # required=True
        verb = _TRANSFER_VERBS.get(event.type, event.type)
        sent = format_amount(
            data.get("source_amount_minor", data.get("amount_minor")), data.get("source_currency", data.get("currency"))
        )
        detail = f" ({data['failure_reason']})" if data.get("failure_reason") else ""
        lines = [(payer, transfer_id, f"{verb}: {sent} to account {data.get('destination_account_id')}{detail}")]
        if event.type in _PAYEE_SEES:
            destination = data_uuid(data, "destination_account_id")
            payee = self._owner(conn, destination)
            if payee is not None and payee != payer:
                received = format_amount(
                    data.get("destination_amount_minor") or data.get("amount_minor"),
                    data.get("destination_currency", data.get("currency")),
                )
                what = "Money received" if event.type == "transfer.posted" else "Incoming transfer reversed"
                lines.append((payee, transfer_id, f"{what}: {received} from account {data.get('source_account_id')}"))
        return lines

    def _account_lines(self, conn: Conn, event: Event) -> list[tuple[UUID, UUID | None, str]]:
        data = event.data
        account_id = data_uuid(data, "account_id")
        customer = data_uuid(data, "customer_id", required=False) or self._owner(conn, account_id)
        if customer is None:  # a house account: nobody's feed
            return []
        if event.type == "account.deposited":
            amount = format_amount(data.get("amount_minor"), data.get("currency"))
            summary = f"Deposit: {amount} to account {account_id}"
        elif event.type == "account.opened":
            summary = f"Account opened: {data.get('currency')} account {account_id}"
        elif event.type == "account.status_changed":
            summary = f"Account {account_id} is now {data.get('status')} (was {data.get('previous_status')})"
        else:
            summary = f"{event.type}: account {account_id}"
        return [(customer, None, summary)]

    @staticmethod
    def _owner(conn: Conn, account_id: UUID | None) -> UUID | None:
        if account_id is None:
            raise MalformedEvent("account id missing")
        row = conn.execute("SELECT customer_id FROM accounts WHERE id = %s", (account_id,)).fetchone()
        return None if row is None else row[0]
