"""`Ledger`: the facade the workflow activities and the API call.

Plain methods taking and returning frozen dataclasses; each method is one unit of work and
raises only the domain errors listed in its docstring (ledger.errors) or, for
infrastructure failures, psycopg.OperationalError (retry it: every method is idempotent or
read-only, except where noted).

Thread-safe: connections come from the engine's pool, one per call. `Ledger.joining(uow)`
is the same ledger inside a caller's unit of work (ledger.uow): one connection, the caller
commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID

from sqlalchemy import Engine

from ledger import accounts as accounts_mod
from ledger import balances as balances_mod
from ledger import holds as holds_mod
from ledger import outbox as outbox_mod
from ledger import postings as postings_mod
from ledger import transfers as transfers_mod
from ledger.accounts import Account, AccountKind, AccountStatus
from ledger.balances import Balance, Page, ProjectionMismatch, StatementEntry, TrialBalanceLine
from ledger.db import Conn, connection, retryable_statement, transaction
from ledger.db import translated as _translated
from ledger.errors import AccountNotFound, CurrencyMismatch, InvalidAmount
from ledger.fx import FxQuote
from ledger.holds import Hold
from ledger.ids import house_account_id, uuid7
from ledger.legs import Leg
from ledger.money import Money
from ledger.outbox import StoredEvent, make_event
from ledger.postings import PostedLeg, Posting, PostingResult, TransactionKind
from ledger.transfers import Transfer, TransferPosting, TransferStatus
from ledger.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Deposit:
    deposit_id: UUID
    transaction_id: UUID
    account_id: UUID
    amount_minor: int
    currency: str
    posted_at: datetime
    replayed: bool


T = TypeVar("T")


class Ledger:
    """The ledger over one SQLAlchemy Engine (see ledger.db.make_engine)."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], datetime] | None = None, uow: UnitOfWork | None = None
    ) -> None:
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self._uow = uow

    def joining(self, uow: UnitOfWork) -> Ledger:
        """This ledger working inside the caller's unit of work: its methods then write in
        `uow`'s transaction (commit is the caller's), each in a savepoint, so a method that
        raises leaves the unit as it was before the call (as a failed call leaves the
        database on its own)."""
        return Ledger(uow.engine, clock=self._clock, uow=uow)

    @contextmanager
    def _autocommit(self) -> Iterator[Conn]:
        """One call: autocommit (one round trip, the hot path), or a savepoint of the joined unit."""
        if self._uow is not None:
            with _translated(), self._uow.savepoint() as joined:
                yield joined
            return
        with _translated(), connection(self.engine, autocommit=True) as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        """A multi-statement call: its own transaction, or a savepoint of the joined unit."""
        if self._uow is not None:
            with _translated(), self._uow.savepoint() as joined:
                yield joined
            return
        with _translated(), transaction(self.engine) as conn:
            yield conn

    # -- accounts ------------------------------------------------------------------------

    def open_account(
        self, customer_id: UUID, currency: str, *, label: str | None = None, account_id: UUID | None = None
    ) -> Account:
        """Open a customer account (and its `account.opened` event). Idempotent when the
        caller supplies `account_id`.

        Raises:
            UnsupportedCurrency: unknown currency.
            DuplicatePosting: account_id already names another owner's or currency's account.
        """
        with self._transaction() as conn:
            return accounts_mod.open_account(
                conn, account_id=account_id or uuid7(), customer_id=customer_id, currency=currency, label=label
            )

    def get_account(self, account_id: UUID) -> Account:
        """Raises: AccountNotFound."""
        with self._autocommit() as conn:
            return accounts_mod.get_account(conn, account_id)

    def find_account_by_number(self, account_number: str) -> Account:
        """The customer account with this normalized number. Raises: AccountNotFound."""
        with self._autocommit() as conn:
            return accounts_mod.find_by_number(conn, account_number)

    def list_accounts(self, customer_id: UUID) -> list[Account]:
        """The customer's accounts, oldest first."""
        with self._autocommit() as conn:
            return accounts_mod.list_customer_accounts(conn, customer_id)

    def set_account_status(self, account_id: UUID, status: AccountStatus | str, expected_version: int) -> Account:
        """Compare-and-set an account's status (active / frozen / closed).

        Raises:
            AccountNotFound: no such account.
            VersionConflict: expected_version is stale (the API's 412).
            IllegalTransition: house account, already closed, or closing a non-empty account.
        """
        with self._transaction() as conn:
            return accounts_mod.set_account_status(conn, account_id, AccountStatus(status), expected_version)

    def ensure_house_accounts(self, currencies: Iterable[str]) -> list[Account]:
        """Create settlement, fx_liquidity and fx_revenue of each currency (idempotent).

        Raises:
            UnsupportedCurrency: unknown currency.
        """
        with self._transaction() as conn:
            return accounts_mod.ensure_house_accounts(conn, currencies)

    def house_account(self, kind: AccountKind | str, currency: str) -> Account:
        """Raises: AccountNotFound (ensure_house_accounts was never run for the currency)."""
        return self.get_account(house_account_id(AccountKind(kind), currency))

    # -- money in ------------------------------------------------------------------------

    def deposit(
        self,
        deposit_id: UUID,
        account_id: UUID,
        amount: Money,
        *,
        external_reference: str | None = None,
        description: str | None = None,
    ) -> Deposit:
        """Money from outside: debit settlement:<CCY>, credit the customer account, with an
        `account.deposited` event; one transaction keyed on `deposit_id` (a replay returns
        the first result and writes nothing).

        Raises:
            InvalidAmount: amount not positive.
            AccountNotFound: no such customer account.
            CurrencyMismatch: the account is in another currency.
            AccountFrozen, AccountClosed: the account takes no postings.
            DuplicatePosting: deposit_id was used for a different deposit.
        """
        if amount.amount_minor <= 0:
            raise InvalidAmount("a deposit must be positive")
        with self._autocommit() as conn:
            account = accounts_mod.get_account(conn, account_id)
            if account.kind is not AccountKind.CUSTOMER:
                raise AccountNotFound(account_id)
            if account.currency != amount.currency:
                raise CurrencyMismatch(
                    f"account {account_id} is in {account.currency}, not {amount.currency}",
                    expected=account.currency,
                    actual=amount.currency,
                )
            accounts_mod.check_active(account)
            settlement = house_account_id(AccountKind.SETTLEMENT, amount.currency)
            transaction_id = uuid7()
            event = make_event(
                "account.deposited",
                business_id=deposit_id,
                key=account_id,
                data={
                    "deposit_id": deposit_id,
                    "transaction_id": transaction_id,
                    "account_id": account_id,
                    "amount_minor": amount.amount_minor,
                    "currency": amount.currency,
                    "external_reference": external_reference,
                },
            )
            posting = Posting(
                idempotency_key=deposit_id,
                kind=TransactionKind.DEPOSIT,
                legs=(Leg.debit(settlement, amount), Leg.credit(account_id, amount)),
                description=description,
                external_reference=external_reference,
                event=event,
            )
            result = self._post_ensuring_house(conn, posting, transaction_id, [amount.currency])
        return Deposit(
            deposit_id,
            result.transaction_id,
            account_id,
            amount.amount_minor,
            amount.currency,
            result.posted_at,
            result.replayed,
        )

    def _post_ensuring_house(
        self, conn: Conn, posting: Posting, transaction_id: UUID, currencies: list[str]
    ) -> PostingResult:
        return _ensuring_house(conn, lambda: postings_mod.post(conn, posting, transaction_id), lambda: currencies)

    def post(self, posting: Posting, *, transaction_id: UUID | None = None) -> PostingResult:
        """Low-level: write any balanced posting (adjustments, tests). Idempotent by
        posting.idempotency_key.

        Raises:
            DuplicatePosting, InsufficientFunds, AccountFrozen, AccountClosed,
            AccountNotFound, CurrencyMismatch, UnbalancedTransaction, HoldNotFound,
            HoldNotPending.
        """
        with self._autocommit() as conn:
            return postings_mod.post(conn, posting, transaction_id or uuid7())

    # -- holds ---------------------------------------------------------------------------
    # A hold exists only as a transfer's (create_transfer_with_hold places it, void_transfer_hold
    # and post_transfer end it): the ledger offers no holds of their own.

    def get_hold(self, hold_id: UUID) -> Hold:
        """Raises: HoldNotFound."""
        with self._autocommit() as conn:
            return holds_mod.get_hold(conn, hold_id)

    # -- transfers -----------------------------------------------------------------------

    def create_transfer_with_hold(
        self,
        transfer_id: UUID,
        customer_id: UUID,
        source_account_id: UUID,
        destination_account_id: UUID,
        amount: Money,
        *,
        description: str | None = None,
        fx: FxQuote | None = None,
        hold_ttl_s: float | None = None,
        workflow_id: str | None = None,
        precheck: transfers_mod.HoldPrecheck | None = None,
    ) -> Transfer:
        """Validate, place the hold, insert the transfer (`pending_otp`) and its
        `transfer.initiated` event, in one transaction. Idempotent by transfer id.

        `amount.currency` names the fixed side (source or destination currency). A
        destination-fixed cross-currency transfer needs `fx` (an indicative quote) to know
        how much to hold; posting later uses the firm quote. `precheck` (the risk limits)
        runs in the hold's transaction, see `ledger.transfers.create_transfer`.

        Raises:
            SameAccount, AccountNotFound (also: source not the customer's), CurrencyMismatch,
            AccountFrozen, AccountClosed, InsufficientFunds, InvalidAmount, FxQuoteRequired,
            DuplicatePosting (transfer_id used for a different transfer).
        """
        if amount.amount_minor <= 0:
            raise InvalidAmount("a transfer must be positive")
        expires_at = self._clock() + timedelta(seconds=hold_ttl_s) if hold_ttl_s is not None else None
        # Without a precheck the call is one autocommit round trip (the hot path); with one,
        # the check's lock and reads commit together with the hold.
        unit = self._autocommit() if precheck is None else self._transaction()
        with unit as conn:
            return transfers_mod.create_transfer(
                conn,
                transfer_id=transfer_id,
                customer_id=customer_id,
                source_account_id=source_account_id,
                destination_account_id=destination_account_id,
                amount=amount,
                description=description,
                fx=fx,
                hold_expires_at=expires_at,
                workflow_id=workflow_id or f"transfer-{transfer_id}",
                precheck=precheck,
            )

    def get_transfer(self, transfer_id: UUID) -> Transfer:
        """Raises: TransferNotFound."""
        with self._autocommit() as conn:
            return transfers_mod.get_transfer(conn, transfer_id)

    def list_transfers(
        self,
        *,
        customer_id: UUID | None = None,
        status: TransferStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Transfer]:
        """Newest first. Raises: InvalidCursor."""
        with self._autocommit() as conn:
            return transfers_mod.list_transfers(
                conn,
                customer_id=customer_id,
                status=TransferStatus(status) if status is not None else None,
                limit=limit,
                cursor=cursor,
            )

    def transition_transfer(
        self, transfer_id: UUID, to_status: TransferStatus | str, expected_version: int | None = None
    ) -> Transfer:
        """pending_otp -> in_review | processing, in_review -> processing (compare-and-set;
        repeating a done transition is a no-op).

        Raises: TransferNotFound, VersionConflict, IllegalTransition.
        """
        with self._autocommit() as conn:
            return transfers_mod.transition_transfer(conn, transfer_id, TransferStatus(to_status), expected_version)

    def void_transfer_hold(
        self, transfer_id: UUID, final_status: TransferStatus | str, reason: str | None = None
    ) -> Transfer:
        """Release the hold, set failed / cancelled / expired / rejected and write the
        matching event, in one transaction. Idempotent for the same final status.

        Raises: TransferNotFound, IllegalTransition.
        """
        with self._autocommit() as conn:
            return transfers_mod.void_transfer(conn, transfer_id, TransferStatus(final_status), reason)

    def post_transfer(self, transfer_id: UUID, fx: FxQuote | None = None) -> TransferPosting:
        """Convert the hold into legs (FX legs with `fx`, the firm quote, when currencies
        differ), update the projection, write `transfer.posted`, set `posted`: ONE
        transaction. Idempotent by transfer id: a second call returns the same
        transaction id (replayed=True) and writes nothing.

        Raises:
            TransferNotFound; IllegalTransition (not processing); FxQuoteRequired;
            CurrencyMismatch; InvalidAmount; InsufficientFunds (FX source amount above the
            hold and not available); AccountFrozen; AccountClosed; HoldNotPending (the hold
            was voided or expired); VersionConflict (lost repeated races).
        """
        with self._autocommit() as conn:

            def currencies() -> list[str]:
                transfer = transfers_mod.get_transfer(conn, transfer_id)
                return [transfer.source_currency, transfer.destination_currency]

            return _ensuring_house(conn, lambda: transfers_mod.post_transfer(conn, transfer_id, fx), currencies)

    def reverse_transfer(self, reversal_id: UUID, transfer_id: UUID, reason: str | None = None) -> TransferPosting:
        """Compensating transaction for a posted transfer (its legs inverted), status
        `reversed`, `transfer.reversed` event; one transaction keyed on `reversal_id`. The
        maker-checker approval is the caller's (the ops API).

        Raises: TransferNotFound, IllegalTransition, InsufficientFunds, AccountFrozen,
            AccountClosed, VersionConflict.
        """
        with self._autocommit() as conn:
            return transfers_mod.reverse_transfer(conn, reversal_id=reversal_id, transfer_id=transfer_id, reason=reason)

    def transfer_legs(self, transfer_id: UUID) -> list[PostedLeg]:
        """The entries of the transfer's posting (empty until posted).

        Raises: TransferNotFound.
        """
        with self._autocommit() as conn:
            transfer = transfers_mod.get_transfer(conn, transfer_id)
            if transfer.transaction_id is None:
                return []
            return postings_mod.transaction_legs(conn, transfer.transaction_id)

    # -- balances and proofs --------------------------------------------------------------

    def balance(self, account_id: UUID, as_of: datetime | None = None) -> Balance:
        """Current balance from the projection, or the balance at `as_of` from the entries.

        Raises: AccountNotFound.
        """
        with self._autocommit() as conn:
            if as_of is None:
                return balances_mod.current_balance(conn, account_id)
            return balances_mod.balance_as_of(conn, account_id, as_of)

    def statement(self, account_id: UUID, limit: int = 50, cursor: str | None = None) -> Page[StatementEntry]:
        """Entries newest first with balance_after_minor; keyset cursor on (posted_at, id).

        Raises: AccountNotFound, InvalidCursor.
        """
        with self._autocommit() as conn:
            return balances_mod.statement(conn, account_id, limit, cursor)

    def trial_balance(self) -> list[TrialBalanceLine]:
        """Per currency: total debits, total credits, sum of projections."""
        with self._autocommit() as conn:
            return balances_mod.trial_balance(conn)

    def projection_mismatches(self) -> list[ProjectionMismatch]:
        """Accounts whose projection disagrees with their entries or holds (should be [])."""
        with self._autocommit() as conn:
            return balances_mod.projection_mismatches(conn)

    def events_for(self, key: UUID | str) -> list[StoredEvent]:
        """Outbox rows of a transfer (or account), oldest first, with published_at."""
        with self._autocommit() as conn:
            return outbox_mod.events_for_key(conn, key)


def _ensuring_house(conn: Conn, attempt: Callable[[], T], currencies: Callable[[], list[str]]) -> T:
    """Run `attempt`; if it fails because a house account of `currencies()` is missing, create
    the house accounts of those currencies and run it once more (the one place that retries so;
    `currencies` is asked only then). Inside a unit of work the attempt runs in a savepoint
    (ledger.db.retryable_statement), so its failure leaves the caller's transaction usable."""
    try:
        with _translated(), retryable_statement(conn):
            return attempt()
    except AccountNotFound as exc:
        wanted = currencies()
        house_ids = {str(house_account_id(k, c)) for k in accounts_mod.HOUSE_KINDS for c in wanted}
        if str(exc.account_id) not in house_ids:
            raise
    with conn.transaction():
        accounts_mod.ensure_house_accounts(conn, wanted)
    return attempt()
