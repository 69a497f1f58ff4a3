"""SQLAlchemy 2 typed mapping of the ledger tables, for readers (the API, reconciliation).

The schema itself is made by the Alembic migration (ledger/migrations), which also holds
what SQLAlchemy cannot describe: triggers, check constraints, the posting functions. A
test compares this metadata with the migrated database so the two cannot drift apart.

Write through `ledger.service.Ledger`, never through these classes: the invariants (balanced
legs, projection in step with entries, outbox row in the same transaction) live in the
posting functions, and the database refuses most writes that bypass them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

TZ = DateTime(timezone=True)


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (`xid8`): the outbox row's writing transaction."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "XID8"


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("id", "currency", "allow_overdraft", name="accounts_id_currency_overdraft"),
        UniqueConstraint("account_number", name="accounts_account_number_key"),
        Index(
            "accounts_house_kind_currency",
            "kind",
            "currency",
            unique=True,
            postgresql_where=text("kind <> 'customer'"),
        ),
        Index("accounts_customer", "customer_id", "created_at", postgresql_where=text("customer_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    currency: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="active")
    allow_overdraft: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    # LF + check digits + 16 digits, from a sequence at insert (migration 0013_payees).
    account_number: Mapped[str] = mapped_column(
        Text, server_default=text("ledger_account_number(nextval('account_number_seq'::regclass))")
    )


class AccountBalanceRow(Base):
    __tablename__ = "account_balances"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "currency", "allow_overdraft"],
            ["accounts.id", "accounts.currency", "accounts.allow_overdraft"],
            name="account_balances_account_fkey",
        ),
        UniqueConstraint("account_id", "currency", name="account_balances_account_currency"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    currency: Mapped[str] = mapped_column(Text)
    allow_overdraft: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(Text)
    ledger_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    held_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    last_posted_at: Mapped[datetime | None] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class LedgerTransactionRow(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("idempotency_key", name="ledger_transactions_idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    idempotency_key: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(Text)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    description: Mapped[str | None] = mapped_column(Text)
    external_reference: Mapped[str | None] = mapped_column(Text)
    request_hash: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class EntryRow(Base):
    __tablename__ = "entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "currency"],
            ["account_balances.account_id", "account_balances.currency"],
            name="entries_account_currency_fkey",
        ),
        UniqueConstraint("transaction_id", "leg_no", name="entries_transaction_leg"),
        UniqueConstraint("account_id", "posted_at", name="entries_account_posted_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("ledger_uuidv7()"))
    transaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("ledger_transactions.id"))
    leg_no: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    currency: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    balance_after_minor: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(TZ)


class HoldRow(Base):
    __tablename__ = "holds"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "currency"],
            ["account_balances.account_id", "account_balances.currency"],
            name="holds_account_currency_fkey",
        ),
        Index("holds_account_created", "account_id", "created_at"),
        Index("holds_expires_at", "expires_at", postgresql_where=text("expires_at IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    currency: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("ledger_transactions.id"))
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)


class TransferRow(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["source_account_id", "source_currency"],
            ["account_balances.account_id", "account_balances.currency"],
            name="transfers_source_account_fkey",
        ),
        Index("transfers_customer_created", "customer_id", text("created_at DESC"), text("id DESC")),
        # Read by the risk limit check under its lock (migration 0014_risk).
        Index("transfers_limit_usage", "customer_id", "source_currency", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    source_account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    destination_account_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("accounts.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    source_currency: Mapped[str] = mapped_column(Text)
    destination_currency: Mapped[str] = mapped_column(Text)
    source_amount_minor: Mapped[int] = mapped_column(BigInteger)
    destination_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    fx_quote_id: Mapped[str | None] = mapped_column(Text)
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric)
    fx_spread_bps: Mapped[int | None] = mapped_column(Integer)
    fx_spread_minor: Mapped[int | None] = mapped_column(BigInteger)
    hold_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("holds.id"))
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ledger_transactions.id", deferrable=True, initially="DEFERRED")
    )
    reversal_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("ledger_transactions.id", deferrable=True, initially="DEFERRED")
    )
    workflow_id: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's cursor (migration 0009): pages of a delta in seq order, a delta's
        # start by transaction id; the parked rows for ops.
        Index("outbox_seq", "seq"),
        Index("outbox_txid", "txid"),
        Index("outbox_parked", "seq", postgresql_where=text("parked")),
        Index("outbox_key", "key", "seq"),
        # The retention sweep's time filter (migration 0011_retention): a BRIN, nearly free on insert.
        Index("outbox_created_brin", "created_at", postgresql_using="brin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    topic: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    # json, not jsonb: the envelope as the text Kafka gets (migration 0009).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=text("now()"))
    # Set only on rows published before migration 0009 (or stamped by hand): the relay's
    # cursor says what is published now; read the view `outbox_state` for the effective value.
    published_at: Mapped[datetime | None] = mapped_column(TZ)
    txid: Mapped[int] = mapped_column(Xid8, server_default=text("pg_current_xact_id()"))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    parked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
