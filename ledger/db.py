"""Engine factory, driver connections and the mapping of database errors to domain errors.

The ledger talks to PostgreSQL through psycopg connections borrowed from the SQLAlchemy
engine's pool. Calls to the posting functions run in autocommit mode: the function call is
the whole transaction, so a posting is a single round trip (no BEGIN, no COMMIT) and a
connection that dies mid-call leaves nothing behind. Multi-statement work outside the
ledger goes through a unit of work (ledger.uow.UnitOfWork: rolls back unless committed);
`transaction()` is the ledger's own multi-statement block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, LiteralString, cast
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine, event, exc

from ledger.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotFound,
    CurrencyMismatch,
    FxQuoteRequired,
    HoldNotFound,
    HoldNotPending,
    InsufficientFunds,
    LedgerError,
    LedgerIntegrityError,
    TransferNotFound,
    UnbalancedTransaction,
)

Conn = psycopg.Connection[Any]


def normalize_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver (accepts plain postgresql:// URLs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(
    url: str,
    pool_size: int = 20,
    *,
    max_overflow: int = 10,
    pool_timeout_s: float = 30.0,
    pre_ping: bool = False,
    ping_after_idle_s: float = 0.0,
    application_name: str = "ledgerflow-ledger",
) -> Engine:
    """An Engine whose pool the Ledger borrows psycopg connections from.

    pre_ping is off by default: it costs a round trip per checkout on the posting path, and
    a connection found dead mid-call is invalidated anyway (callers such as Temporal
    activities retry). Turn it on for processes that sit idle across database restarts; with
    `ping_after_idle_s`, only a connection that sat in the pool at least that long is checked
    (a busy process's connections come back within milliseconds and skip the round trip).
    """
    engine = create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=pre_ping and ping_after_idle_s <= 0,
        connect_args={"application_name": application_name},
    )
    if pre_ping and ping_after_idle_s > 0:
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only: a dead one
    raises DisconnectionError at checkout, and the pool replaces it before the caller sees it."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_s:
            return  # just connected, or back in the pool a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except psycopg.Error as err:
            raise exc.DisconnectionError(f"pooled connection dead after {idle_s:.1f}s idle") from err


@contextmanager
def connection(engine: Engine, *, autocommit: bool = True) -> Iterator[Conn]:
    """A pooled psycopg connection. In autocommit mode each statement is its own transaction.

    A connection that failed at the network level is invalidated rather than returned to
    the pool; whatever was in flight on it was rolled back by the server.
    """
    raw = engine.raw_connection()
    conn = cast(Conn, raw.driver_connection)
    try:
        conn.autocommit = autocommit
        yield conn
    except psycopg.OperationalError:
        raw.invalidate()
        raise
    finally:
        if raw.is_valid:
            try:
                if not conn.autocommit:
                    conn.rollback()
                conn.autocommit = False  # SQLAlchemy's own users expect its default
            except psycopg.Error:
                raw.invalidate()
        raw.close()


@contextmanager
def transaction(engine: Engine) -> Iterator[Conn]:
    """A unit of work: commits if the block completes, rolls back if it raises."""
    with connection(engine, autocommit=False) as conn, conn.transaction():
        yield conn


def retryable_statement(conn: Conn) -> contextlib.AbstractContextManager[Any]:
    """Wrap a statement whose error the caller catches and retries after: in autocommit mode a
    failed statement leaves nothing behind; inside a transaction (a unit of work) it would
    abort the whole transaction, so there it gets a savepoint. The caller must already have
    run a statement on `conn` (psycopg takes a block on an idle connection for the outer
    transaction and would commit it)."""
    return contextlib.nullcontext() if conn.autocommit else conn.transaction()


def call_function(
    conn: Conn,
    function: LiteralString,
    returning: LiteralString,
    casts: Mapping[str, LiteralString] | None = None,
    /,
    **arguments: object,
) -> Any:
    """`SELECT <returning> FROM <function>(p_a => %(p_a)s, ...)`: a SQL function called with
    NAMED arguments (names as in its definition), so a call site says what each value is
    and a parameter added with a default breaks nobody. `casts` types the values that need
    it (the legs' array literals: `{"p_amounts": "bigint[]"}`). Returns the cursor."""
    parts: list[str] = []
    params: dict[str, object] = {}
    for name, value in arguments.items():
        cast_to = (casts or {}).get(name)
        suffix = f"::{cast_to}" if cast_to else ""
        if value is None:
            # NULL in the text, not a parameter: nothing to adapt or send (the same-currency
            # posting passes 10 of its 14 arguments as NULL, on the hot path).
            parts.append(f"{name} => NULL{suffix}")
        else:
            parts.append(f"{name} => %({name})s{suffix}")
            params[name] = value
    query = f"SELECT {returning} FROM {function}({', '.join(parts)})"
    return conn.execute(query, params)  # built from LiteralStrings only


# SQLSTATEs raised by the schema's functions and triggers (see the migration's docstring).
_INSUFFICIENT, _FROZEN, _CLOSED, _NOT_FOUND, _CURRENCY = "LF001", "LF002", "LF003", "LF004", "LF005"
_UNBALANCED, _HOLD_NOT_PENDING, _HOLD_NOT_FOUND = "LF006", "LF007", "LF008"
TRANSFER_CONFLICT = "LF009"
APPEND_ONLY = "LF010"
_QUOTE_REQUIRED, _TRANSFER_NOT_FOUND = "LF012", "LF013"


def _id(text: str) -> UUID | str:
    try:
        return UUID(text)
    except ValueError:
        return text


def translate_error(exc: psycopg.Error) -> LedgerError | None:
    """The domain error a database error stands for, or None when it is not one of ours."""
    code = exc.sqlstate
    detail = (exc.diag.message_detail or "") if exc.diag else ""
    ident = _id(detail)
    message = (exc.diag.message_primary or str(exc)) if exc.diag else str(exc)
    if code == _INSUFFICIENT:
        return InsufficientFunds(ident)
    if code == _FROZEN:
        return AccountFrozen(ident, "frozen")
    if code == _CLOSED:
        return AccountClosed(ident, "closed")
    if code == _NOT_FOUND:
        return AccountNotFound(ident)
    if code == _CURRENCY:
        return CurrencyMismatch(message)
    if code == _UNBALANCED:
        return UnbalancedTransaction(message)
    if code == _HOLD_NOT_PENDING:
        return HoldNotPending(None, detail)
    if code == _HOLD_NOT_FOUND:
        return HoldNotFound(ident)
    if code == _QUOTE_REQUIRED:
        return FxQuoteRequired(message)
    if code == _TRANSFER_NOT_FOUND:
        return TransferNotFound(ident)
    if isinstance(exc, pg_errors.CheckViolation) and exc.diag.constraint_name == "account_balances_no_overdraft":
        return InsufficientFunds(None)
    if isinstance(exc, pg_errors.ForeignKeyViolation) and (exc.diag.constraint_name or "").endswith(
        "account_currency_fkey"
    ):
        return CurrencyMismatch(message)
    if isinstance(exc, pg_errors.IntegrityError) or code == APPEND_ONLY:
        return LedgerIntegrityError(message)
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Database errors that stand for domain errors come out as those (chained)."""
    try:
        yield
    except psycopg.Error as exc:
        raise_translated(exc)
        raise


def raise_translated(exc: psycopg.Error) -> None:
    """Re-raise `exc` as its domain error when it has one (chained), else leave it to the caller."""
    domain = translate_error(exc)
    if domain is not None:
        raise domain from exc
