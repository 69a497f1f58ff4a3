"""ledger/states.py against what else spells the same values: the migrated database's ENUM types
and CHECK constraints, the relay's Kafka topics, the outbox's event table and the API's schemas.

A value added to an enum and not to the database (or the other way round) fails here, not in
a transfer at run time.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, get_args

import psycopg
import pytest

from api import schemas, schemas_risk
from api.routes import ops_reconciliation, ops_reversals
from ledger import states
from ledger.outbox import EVENT_TOPICS
from relay.topics import TOPICS
from risk import rules

# Enums backed by a PostgreSQL ENUM type.
SQL_TYPES: list[tuple[type[StrEnum], str]] = [
    (states.TransferStatus, "ledger_transfer_status"),
    (states.HoldState, "ledger_hold_state"),
    (states.AccountKind, "ledger_account_kind"),
    (states.AccountStatus, "ledger_account_status"),
    (states.TransactionKind, "ledger_transaction_kind"),
    (states.Topic, "ledger_topic"),
]

# Enums backed by a CHECK (column IN (...)) constraint: (enum, table, column).
SQL_CHECKS: list[tuple[type[StrEnum], str, str]] = [
    (states.OtpChallengeState, "otp_challenges", "state"),
    (states.Verdict, "risk_assessments", "verdict"),
    (states.Verdict, "risk_decisions", "verdict"),
    (states.RiskAction, "risk_rules", "action"),
    (states.PayeeStatus, "payees", "status"),
    (states.ScaExemption, "transfer_sca", "sca_exemption"),
    (states.StandingOrderStatus, "standing_orders", "status"),
    (states.Frequency, "standing_orders", "frequency"),
    (states.StandingOrderRunStatus, "standing_order_runs", "status"),
    (states.ReversalStatus, "reversals", "status"),
    (states.ReconRunStatus, "reconciliation_runs", "status"),
    (states.AuditOutcome, "audit_log", "outcome"),
    (states.StaffRole, "staff", "role"),
]

# The API's Literal types (kept as Literals so the OpenAPI document does not change).
API_LITERALS: list[tuple[type[StrEnum], Any]] = [
    (states.TransferStatus, schemas.TransferStatus),
    (states.AccountStatus, schemas.AccountStatus),
    (states.ScaExemption, schemas.ScaExemption),
    (states.StaffRole, schemas.Role),
    (states.Frequency, schemas.Frequency),
    (states.PayeeStatus, schemas.Payee.model_fields["status"].annotation),
    (states.StandingOrderStatus, schemas.StandingOrder.model_fields["status"].annotation),
    (states.Verdict, schemas.Risk.model_fields["verdict"].annotation),
    (states.AuditOutcome, schemas.AuditEntry.model_fields["outcome"].annotation),
    (states.RiskAction, schemas_risk.RiskAction),
    (states.RiskAction, rules.Action),
    (states.ReversalStatus, ops_reversals.ReversalStatus),
    (states.ReconRunStatus, ops_reconciliation.RunStarted.model_fields["status"].annotation),
    (states.TransferStatus, schemas.StatusFilter),
]


def values(enum: type[StrEnum]) -> set[str]:
    return {member.value for member in enum}


def check_values(conn: psycopg.Connection[Any], table: str, column: str) -> set[str]:
    """The strings a CHECK constraint on `table` allows for `column` (PostgreSQL stores
    `col IN ('a', 'b')` as `CHECK ((col = ANY (ARRAY['a'::text, 'b'::text])))`). Only a
    constraint that is the IN-list and nothing else counts (not, say, `(status IN (...)) =
    (finished_at IS NOT NULL)`)."""
    rows = conn.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contype = 'c' AND c.conrelid = %s::regclass",
        (table,),
    ).fetchall()
    found = [
        set(re.findall(r"'([^']*)'::text", definition))
        for (definition,) in rows
        if re.fullmatch(rf"CHECK \(\({column} = ANY \(ARRAY\[[^\]]*\]\)\)\)", definition)
    ]
    assert len(found) == 1, f"{table}.{column}: expected one IN-list CHECK, found {len(found)}"
    return found[0]


@pytest.fixture
def conn(raw: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A connection to a database migrated to head (tests/ledger/conftest.py)."""
    return raw


@pytest.mark.parametrize(("enum", "sql_type"), SQL_TYPES, ids=[t for _, t in SQL_TYPES])
def test_enum_matches_sql_type(conn: psycopg.Connection[Any], enum: type[StrEnum], sql_type: str) -> None:
    rows = conn.execute(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = %s",
        (sql_type,),
    ).fetchall()
    assert {label for (label,) in rows} == values(enum)


@pytest.mark.parametrize(
    ("enum", "table", "column"), SQL_CHECKS, ids=[f"{table}.{column}" for _, table, column in SQL_CHECKS]
)
def test_enum_matches_check_constraint(
    conn: psycopg.Connection[Any], enum: type[StrEnum], table: str, column: str
) -> None:
    assert check_values(conn, table, column) == values(enum)


def test_topics_match_the_relay() -> None:
    assert {spec.name for spec in TOPICS} == values(states.Topic)


def test_event_types_each_have_a_topic() -> None:
    assert set(EVENT_TOPICS) == values(states.EventType)
    for event_type, topic in EVENT_TOPICS.items():
        assert topic in states.Topic, event_type


@pytest.mark.parametrize(
    ("enum", "literal"), API_LITERALS, ids=[f"{e.__name__}-{i}" for i, (e, _) in enumerate(API_LITERALS)]
)
def test_api_literals_match(enum: type[StrEnum], literal: Any) -> None:
    assert set(get_args(literal)) == values(enum)
