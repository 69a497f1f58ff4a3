"""The facts the rules judge, read from a real PostgreSQL ledger, at each rule's edge, and the
assessment recorded once per event (with its `risk.assessed` outbox row)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Engine

from ledger.accounts import Account
from ledger.db import transaction
from ledger.ids import uuid7
from ledger.money import Money
from ledger.service import Ledger
from risk import assess as risk_assess
from risk.rules import Rule, fires


def posted(ledger: Ledger, source: Account, destination: Account, amount_minor: int) -> UUID:
    assert source.customer_id is not None
    tid = uuid7()
    ledger.create_transfer_with_hold(tid, source.customer_id, source.id, destination.id, Money(amount_minor, "USD"))
    ledger.transition_transfer(tid, "processing")
    ledger.post_transfer(tid)
    return tid


def initiated(
    ledger: Ledger, source: Account, destination: Account, amount_minor: int
) -> risk_assess.InitiatedTransfer:
    """A new transfer (held, not posted) as its transfer.initiated event describes it."""
    assert source.customer_id is not None
    tid = uuid7()
    t = ledger.create_transfer_with_hold(tid, source.customer_id, source.id, destination.id, Money(amount_minor, "USD"))
    return risk_assess.InitiatedTransfer(
        event_id=uuid.uuid4(),
        transfer_id=tid,
        customer_id=source.customer_id,
        source_account_id=source.id,
        destination_account_id=destination.id,
        amount_minor=amount_minor,
        currency="USD",
        workflow_id=t.workflow_id,
        initiated_at=t.created_at,
    )


def test_facts_at_each_rules_edge(engine: Engine) -> None:
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(["USD"])
    alice = ledger.open_account(uuid7(), "USD")
    ledger.deposit(uuid7(), alice.id, Money(1_000_000, "USD"))
    bob = ledger.open_account(uuid7(), "USD")
    carol = ledger.open_account(uuid7(), "USD")
    for amount in (1_000, 2_000, 3_000):
        posted(ledger, alice, bob, amount)
    rules = [
        Rule("velocity", True, "review", {"count": 4, "window_s": 600}),
        Rule("new_payee_amount", True, "review", {"amount_minor": {"USD": 4_000}}),
        Rule("amount_spike", True, "review", {"factor": 2, "days": 30}),
        Rule("new_account", True, "review", {"hours": 1, "amount_minor": {"USD": 4_000}}),
    ]
    by = {r.name: r for r in rules}
    to_bob = initiated(ledger, alice, bob, 4_000)
    with transaction(engine) as conn:
        facts = risk_assess.gather_facts(conn, to_bob, rules)
    # Four transfers in the window, this one included; bob was paid before; median 2,000.
    assert (facts.recent_count, facts.known_payee, facts.median_minor) == (4, True, Decimal(2_000))
    assert not fires(by["velocity"], facts)
    assert fires(replace(by["velocity"], params={"count": 3, "window_s": 600}), facts)
    assert not fires(by["new_payee_amount"], facts)  # a known payee
    assert fires(by["amount_spike"], facts)  # 4,000 >= 2 x 2,000
    assert not fires(by["amount_spike"], replace(facts, amount_minor=3_999))
    assert fires(by["new_account"], facts)  # opened just now
    # An hour and more later the account is not new; transfers outside the window do not count.
    later = replace(to_bob, initiated_at=to_bob.initiated_at + timedelta(hours=1, seconds=1))
    with transaction(engine) as conn:
        later_facts = risk_assess.gather_facts(conn, later, rules)
    assert not fires(by["new_account"], later_facts)
    assert later_facts.recent_count == 0

    to_carol = initiated(ledger, alice, carol, 4_000)
    with transaction(engine) as conn:
        facts = risk_assess.gather_facts(conn, to_carol, rules)
    assert not facts.known_payee and fires(by["new_payee_amount"], facts)
    assert not fires(by["new_payee_amount"], replace(facts, amount_minor=3_999))
    # A transfer to carol that never posted does not make her a known payee.
    again = initiated(ledger, alice, carol, 4_000)
    with transaction(engine) as conn:
        assert not risk_assess.gather_facts(conn, again, rules).known_payee

    # Recorded once per event, with one risk.assessed row on ledgerflow.risk.
    with transaction(engine) as conn:
        first = risk_assess.record_assessment(conn, to_carol)
        second = risk_assess.record_assessment(conn, to_carol)
        rows = conn.execute(
            "SELECT topic, type FROM outbox WHERE id = %s", (risk_assess.assessed_event_id(to_carol.transfer_id),)
        ).fetchall()
    assert first is not None and second is None
    assert rows == [("ledgerflow.risk", "risk.assessed")]
