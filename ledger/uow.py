"""The unit of work: ONE database connection and ONE transaction, with the repositories that
write through it. Every writer (API routes, activities, reversals, consumers) opens one,
does its reads and writes through it, and calls `commit()`; leaving the block without
`commit()` (normally or by an exception) rolls everything back.

    with UnitOfWork(engine) as uow:
        transfer = uow.transfers.get(transfer_id)
        uow.transfers.transition(transfer.id, TransferStatus.PROCESSING)
        audit.record(uow.sql, ...)          # SQLAlchemy-style writers join the same transaction
        uow.commit()

One connection, two handles on it: `uow.sql` is the SQLAlchemy Connection that owns the
transaction (for code written against SQLAlchemy, such as the audit chain and the
idempotency store), `uow.conn` is the psycopg connection under it, which the repositories
and the ledger's modules use. The application's own queries are psycopg (`%(name)s`
parameters, SQL functions called with named arguments, see `ledger.db.call_function`): the posting
path is CPU-bound on the client (issue #21) and psycopg executes with far less per-call work
than SQLAlchemy's `text()`, and 55 of the application's modules already speak it. SQLAlchemy
stays for the engine, its pool and the transaction boundary.

Repositories hanging off a unit of work are those of the ledger package (accounts,
transfers, holds, postings, outbox). The other domain packages (otp, fx, risk, recon, audit)
sit beside the ledger, not below it, so their repositories are classes that take a unit of
work (`otp.store.OtpRepository(uow)`, `fx.quotes.FxQuoteRepository(uow)`, ...): the ledger
imports none of them (the layer rule of the design's "Code shape").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, LiteralString, Self, cast

from psycopg import Cursor
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine

from ledger.db import Conn, connection

if TYPE_CHECKING:
    from ledger.repositories import (
        AccountRepository,
        HoldRepository,
        OutboxRepository,
        PostingRepository,
        TransferRepository,
    )


class UnitOfWorkClosed(RuntimeError):
    """The unit of work was used outside its `with` block."""


class UnitOfWork:
    """One connection from `engine`'s pool, one transaction; rolls back unless committed.

    Not thread-safe (one connection). After `commit()` the unit of work may go on: the next
    statement opens a new transaction, which again rolls back unless committed.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sql: Connection | None = None
        self.committed = False

    def __enter__(self) -> Self:
        self._sql = self.engine.connect()
        self._sql.begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        sql, self._sql = self._sql, None
        if sql is None:
            return
        try:
            sql.rollback()  # a no-op after commit(); otherwise everything since is undone
        finally:
            sql.close()

    @property
    def sql(self) -> Connection:
        """The SQLAlchemy Connection that owns the transaction."""
        if self._sql is None:
            raise UnitOfWorkClosed("the unit of work is not open")
        if not self._sql.in_transaction():
            self._sql.begin()
        return self._sql

    @property
    def conn(self) -> Conn:
        """The psycopg connection under `sql` (same session, same transaction)."""
        return cast(Conn, self.sql.connection.driver_connection)

    def commit(self) -> None:
        """Make everything done so far durable."""
        self.sql.commit()
        self.committed = True

    def rollback(self) -> None:
        """Undo everything since the last commit (the block's exit does it too)."""
        self.sql.rollback()

    @contextmanager
    def savepoint(self) -> Iterator[Conn]:
        """A nested transaction: an error inside undoes only the block, the unit goes on.

        Use this, not psycopg's `conn.transaction()`, as the FIRST statement of a unit: psycopg
        would take an idle connection's block for the outer transaction and commit it.
        """
        with self.sql.begin_nested():
            yield self.conn

    def execute(self, query: LiteralString, params: Mapping[str, Any] | None = None) -> Any:
        """One statement on the unit's connection (psycopg cursor)."""
        return self.conn.execute(query, params)

    def query(self, query: LiteralString, params: Mapping[str, Any] | None = None) -> Cursor[Any]:
        """One statement whose rows come as named tuples (`row.email`), for the writers that
        read a row back by column name (`%(name)s` parameters)."""
        return self.conn.cursor(row_factory=namedtuple_row).execute(query, params)

    # -- the ledger's repositories ---------------------------------------------------------

    @cached_property
    def accounts(self) -> AccountRepository:
        from ledger.repositories import AccountRepository

        return AccountRepository(self)

    @cached_property
    def transfers(self) -> TransferRepository:
        from ledger.repositories import TransferRepository

        return TransferRepository(self)

    @cached_property
    def holds(self) -> HoldRepository:
        from ledger.repositories import HoldRepository

        return HoldRepository(self)

    @cached_property
    def postings(self) -> PostingRepository:
        from ledger.repositories import PostingRepository

        return PostingRepository(self)

    @cached_property
    def outbox(self) -> OutboxRepository:
        from ledger.repositories import OutboxRepository

        return OutboxRepository(self)


@contextmanager
def session(engine: Engine) -> Iterator[Conn]:
    """A pooled connection in autocommit mode: each statement on it is a unit of work of its
    own, atomic by itself, and nothing is left open between statements.

    For a process that keeps ONE database session across many single-statement units: the
    relay's leader (its advisory lock belongs to the session, and each page's record is one
    statement, outbox_store.commit_page) and its read-ahead reader. A BEGIN/COMMIT pair per
    page would add two round trips to the relay's hot path and buy nothing. Anything of more
    than one statement takes a UnitOfWork instead.
    """
    with connection(engine, autocommit=True) as conn:
        yield conn
