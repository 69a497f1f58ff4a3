"""Ids: UUIDv7 sorts by creation, derived ids are the same in every process."""

from __future__ import annotations

import uuid

from ledger.ids import event_id, house_account_id, uuid7


def test_uuid7_is_version_7_and_monotonic() -> None:
    ids = [uuid7() for _ in range(20_000)]  # several per millisecond: the counter keeps order
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7} and ids[0].variant == uuid.RFC_4122


def test_derived_ids_are_deterministic_and_distinct() -> None:
    transfer = uuid7()
    assert event_id(transfer, "transfer.posted") == event_id(transfer, "transfer.posted")
    assert event_id(transfer, "transfer.posted") != event_id(transfer, "transfer.initiated")
    assert event_id(transfer, "account.status_changed", 2) != event_id(transfer, "account.status_changed", 3)
    assert house_account_id("settlement", "USD") == house_account_id("settlement", "USD")
    assert house_account_id("settlement", "USD") != house_account_id("settlement", "EUR")
    assert house_account_id("settlement", "USD").version == 5
