"""The ledger's repositories: what a unit of work (ledger.uow) writes and reads for accounts,
transfers, holds, postings and the outbox.

Each is a thin, typed face over the ledger module that holds the SQL (ledger.transfers,
ledger.holds, ...), run on the unit's connection with the database's errors translated to
the domain's. They commit nothing: the unit of work does, or rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from ledger import accounts as accounts_mod
from ledger import holds as holds_mod
from ledger import outbox as outbox_mod
from ledger import postings as postings_mod
from ledger import transfers as transfers_mod
from ledger.accounts import Account, AccountStatus
from ledger.db import translated
from ledger.fx import FxQuote
from ledger.holds import Hold
from ledger.money import Money
from ledger.outbox import OutboxEvent, StoredEvent
from ledger.postings import PostedLeg, Posting, PostingResult
from ledger.transfers import HoldPrecheck, ReversalLegs, Transfer, TransferPosting, TransferStatus

if TYPE_CHECKING:
    from ledger.uow import UnitOfWork


class _Repository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow


class AccountRepository(_Repository):
    def get(self, account_id: UUID, *, for_update: bool = False) -> Account:
        """Raises: AccountNotFound."""
        with translated():
            return accounts_mod.get_account(self._uow.conn, account_id, for_update=for_update)

    def open(self, *, account_id: UUID, customer_id: UUID, currency: str, label: str | None) -> Account:
        """Raises: UnsupportedCurrency, DuplicatePosting (see ledger.accounts.open_account)."""
        with translated():
            return accounts_mod.open_account(
                self._uow.conn, account_id=account_id, customer_id=customer_id, currency=currency, label=label
            )

    def ensure_house(self, currencies: Iterable[str]) -> list[Account]:
        with translated(), self._uow.savepoint() as conn:
            return accounts_mod.ensure_house_accounts(conn, currencies)

    def set_status(self, account_id: UUID, status: AccountStatus, expected_version: int) -> Account:
        """Raises: AccountNotFound, VersionConflict, IllegalTransition."""
        with translated():
            return accounts_mod.set_account_status(self._uow.conn, account_id, status, expected_version)


class TransferRepository(_Repository):
    def get(self, transfer_id: UUID) -> Transfer:
        """Raises: TransferNotFound."""
        with translated():
            return transfers_mod.get_transfer(self._uow.conn, transfer_id)

    def create(
        self,
        *,
        transfer_id: UUID,
        customer_id: UUID,
        source_account_id: UUID,
        destination_account_id: UUID,
        amount: Money,
        description: str | None,
        fx: FxQuote | None,
        hold_expires_at: datetime | None,
        workflow_id: str,
        precheck: HoldPrecheck | None = None,
    ) -> Transfer:
        """ledger_create_transfer: the transfer, its hold and `transfer.initiated`. See
        ledger.transfers.create_transfer for what it raises."""
        with translated(), self._uow.savepoint() as conn:
            return transfers_mod.create_transfer(
                conn,
                transfer_id=transfer_id,
                customer_id=customer_id,
                source_account_id=source_account_id,
                destination_account_id=destination_account_id,
                amount=amount,
                description=description,
                fx=fx,
                hold_expires_at=hold_expires_at,
                workflow_id=workflow_id,
                precheck=precheck,
            )

    def transition(self, transfer_id: UUID, to_status: TransferStatus, expected_version: int | None = None) -> Transfer:
        """Compare-and-set to in_review / processing. Raises: TransferNotFound,
        VersionConflict, IllegalTransition."""
        with translated():
            return transfers_mod.transition_transfer(self._uow.conn, transfer_id, to_status, expected_version)

    def void(self, transfer_id: UUID, final_status: TransferStatus, reason: str | None) -> Transfer:
        """ledger_void_transfer. Raises: TransferNotFound, IllegalTransition."""
        with translated():
            return transfers_mod.void_transfer(self._uow.conn, transfer_id, final_status, reason)

    def post(self, transfer_id: UUID, fx: FxQuote | None) -> TransferPosting:
        """ledger_post_transfer (see ledger.transfers.post_transfer for what it raises)."""
        with translated(), self._uow.savepoint() as conn:
            return transfers_mod.post_transfer(conn, transfer_id, fx)

    def reverse(
        self,
        *,
        reversal_id: UUID,
        transfer_id: UUID,
        reason: str | None,
        adjust_legs: ReversalLegs | None = None,
        retry_insufficient: bool = False,
    ) -> TransferPosting:
        """ledger_reverse_transfer (see ledger.transfers.reverse_transfer)."""
        with translated(), self._uow.savepoint() as conn:
            return transfers_mod.reverse_transfer(
                conn,
                reversal_id=reversal_id,
                transfer_id=transfer_id,
                reason=reason,
                adjust_legs=adjust_legs,
                retry_insufficient=retry_insufficient,
            )


class HoldRepository(_Repository):
    def get(self, hold_id: UUID) -> Hold:
        """Raises: HoldNotFound."""
        with translated():
            return holds_mod.get_hold(self._uow.conn, hold_id)


class PostingRepository(_Repository):
    def post(self, posting: Posting, transaction_id: UUID) -> PostingResult:
        """ledger_post (see ledger.postings.post for what it raises)."""
        with translated(), self._uow.savepoint() as conn:
            return postings_mod.post(conn, posting, transaction_id)

    def legs(self, transaction_id: UUID) -> list[PostedLeg]:
        with translated():
            return postings_mod.transaction_legs(self._uow.conn, transaction_id)


class OutboxRepository(_Repository):
    def add(self, event: OutboxEvent) -> bool:
        """Queue one event for the relay, in the unit's transaction; False if its id exists."""
        with translated():
            return outbox_mod.insert_event(self._uow.conn, event)

    def add_all(self, events: Iterable[OutboxEvent]) -> int:
        with translated():
            return outbox_mod.insert_events(self._uow.conn, events)

    def events_for(self, key: UUID | str) -> list[StoredEvent]:
        with translated():
            return outbox_mod.events_for_key(self._uow.conn, key)
