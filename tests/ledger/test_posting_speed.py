"""The same-currency posting path of 0006_posting_speed: the same effects as the generic
leg writer it replaced (ledger_apply_legs and ledger_legs_json), in either lock order, with
the same refusals; and a downgrade and upgrade that keep the live definition."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from ledger.accounts import Account
from ledger.errors import AccountFrozen
from ledger.ids import uuid7
from ledger.migrate import downgrade, upgrade
from ledger.money import Money
from ledger.service import Ledger
from ledger.transfers import TransferStatus
from tests.ledger.conftest import count_rows, funded

Raw = psycopg.Connection[Any]


def _processing(ledger: Ledger, customer: uuid.UUID, source: Account, destination: Account, amount: int) -> uuid.UUID:
    transfer_id = uuid7()
    ledger.create_transfer_with_hold(transfer_id, customer, source.id, destination.id, Money(amount, "USD"))
    ledger.transition_transfer(transfer_id, "processing")
    return transfer_id


def _open_pair(ledger: Ledger, customer: uuid.UUID, *, source_first: bool) -> tuple[Account, Account]:
    """A funded source and a destination; account ids are UUIDv7, so the order of opening
    decides which of the two the posting locks first."""
    if source_first:
        source = funded(ledger, 10_000, customer_id=customer)
        destination = ledger.open_account(uuid.uuid4(), "USD")
    else:
        destination = ledger.open_account(uuid.uuid4(), "USD")
        source = funded(ledger, 10_000, customer_id=customer)
    assert (source.id < destination.id) is source_first
    return source, destination


@pytest.mark.parametrize("source_first", [True, False], ids=["source-locked-first", "destination-locked-first"])
def test_same_currency_posting_writes_what_the_generic_path_wrote(ledger: Ledger, raw: Raw, source_first: bool) -> None:
    customer = uuid.uuid4()
    source, destination = _open_pair(ledger, customer, source_first=source_first)
    first = _processing(ledger, customer, source, destination, 2500)
    second = _processing(ledger, customer, source, destination, 500)
    posting = ledger.post_transfer(first)
    ledger.post_transfer(second)

    assert posting.transfer.status is TransferStatus.POSTED and not posting.replayed
    assert [(leg.account_id, leg.signed_minor) for leg in posting.legs] == [(source.id, -2500), (destination.id, 2500)]
    entries = raw.execute(
        "SELECT leg_no, account_id, direction, amount_minor, currency, balance_after_minor, posted_at "
        "FROM entries WHERE transaction_id = %s ORDER BY leg_no",
        (posting.transaction_id,),
    ).fetchall()
    assert [e[:6] for e in entries] == [
        (1, source.id, "debit", 2500, "USD", 7500),
        (2, destination.id, "credit", 2500, "USD", 2500),
    ]
    # each account's entries stay in a strict order, and its projection matches them
    for account in (source, destination):
        times = [r[0] for r in raw.execute("SELECT posted_at FROM entries WHERE account_id = %s", (account.id,))]
        assert len(times) == len(set(times))
        last = raw.execute("SELECT last_posted_at FROM account_balances WHERE account_id = %s", (account.id,))
        assert last.fetchone() == (max(times),)
    assert ledger.balance(source.id).ledger_minor == 7000 and ledger.balance(source.id).held_minor == 0
    assert ledger.balance(destination.id).ledger_minor == 3000
    assert ledger.projection_mismatches() == []

    # the event's legs are exactly the JSON the generic ledger_legs_json builds
    row = raw.execute(
        "SELECT (o.payload -> 'data' -> 'legs')::jsonb "
        "= ledger_legs_json(ARRAY[%s, %s]::uuid[], '{USD,USD}', '{-2500,2500}'), "
        "o.payload -> 'data' ->> 'posted_at' = ledger_rfc3339(t.posted_at) "
        "FROM outbox o JOIN ledger_transactions t ON t.idempotency_key = %s "
        "WHERE o.key = %s AND o.type = 'transfer.posted'",
        (source.id, destination.id, first, str(first)),
    ).fetchone()
    assert row == (True, True)


def test_same_currency_posting_refuses_a_frozen_destination_and_writes_nothing(ledger: Ledger, raw: Raw) -> None:
    customer = uuid.uuid4()
    source, destination = _open_pair(ledger, customer, source_first=True)
    transfer_id = _processing(ledger, customer, source, destination, 1000)
    destination = ledger.get_account(destination.id)
    ledger.set_account_status(destination.id, "frozen", destination.version)
    before = count_rows(raw)
    with pytest.raises(AccountFrozen):
        ledger.post_transfer(transfer_id)
    assert count_rows(raw) == before
    assert ledger.get_transfer(transfer_id).status is TransferStatus.PROCESSING
    assert ledger.balance(source.id).held_minor == 1000


def test_rfc3339_is_stable_so_that_it_is_inlined(raw: Raw) -> None:
    row = raw.execute("SELECT provolatile FROM pg_proc WHERE proname = 'ledger_rfc3339'").fetchone()
    assert row == ("s",)


def test_0006_downgrade_and_upgrade_keep_the_live_definition(db_url: str) -> None:
    upgrade(db_url)
    definition = "SELECT prosrc FROM pg_proc WHERE proname = 'ledger_post_transfer'"
    seqscan = "SELECT proconfig FROM pg_proc WHERE proname = 'ledger_post_transfer'"
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as conn:
        body = conn.execute(definition).fetchone()
        assert body is not None and "ledger_legs_json(v_ids" not in body[0]
        downgrade(db_url, "0005_recon")
        # The function comes from its file (ledger/sql/functions/), not from a revision: a
        # downgrade of 0006 keeps the live definition (it changes no table).
        body = conn.execute(definition).fetchone()
        assert body is not None and "ledger_legs_json(v_ids" not in body[0]
        assert conn.execute(seqscan).fetchone() == (["enable_seqscan=off"],)
        upgrade(db_url)
        body = conn.execute(definition).fetchone()
        assert body is not None and "ledger_legs_json(v_ids" not in body[0]
        assert conn.execute(seqscan).fetchone() == (["enable_seqscan=off"],)
        assert conn.execute("SELECT provolatile FROM pg_proc WHERE proname = 'ledger_rfc3339'").fetchone() == ("s",)
