"""Staff can find transfers in Temporal by status and customer (search attributes + memo)."""

from __future__ import annotations

import asyncio

from tests.workflows.helpers import Bank, result


async def test_find_by_status_and_customer(bank: Bank) -> None:
    alice = bank.customer_account("USD", 10_000)
    bob = bank.customer_account("EUR")
    handle, state = await bank.start(alice, bob, 1_000)
    await bank.submit(handle, bank.otp_code(state.transfer_id))
    assert await result(handle) == "posted"

    query = f'TransferStatus = "posted" AND CustomerId = "{alice.customer_id}" AND DestinationCurrency = "EUR"'
    found = []
    for _ in range(100):  # visibility is eventually consistent
        found = [w async for w in bank.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert [w.id for w in found] == [handle.id]
    assert found[0].typed_search_attributes is not None

    description = await handle.describe()
    memo = await description.memo()
    assert memo["transfer_id"] == state.transfer_id
    assert memo["route"] == "USD -> EUR"

    nobody = [w async for w in bank.client.list_workflows('TransferStatus = "posted" AND CustomerId = "nobody"')]
    assert nobody == []
