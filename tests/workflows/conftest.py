from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr

from config.settings import Settings
from ledger.db import make_engine
from ledger.service import Ledger
from security.sealed import load_sealer
from tests.workflows.helpers import CURRENCIES, Bank
from worker.build import build_worker
from worker.temporal_client import connect

# Low thresholds so review tests need no huge deposits: 1,000.00 USD and up is reviewed.
TEST_SETTINGS = Settings(
    otp_key=SecretStr("11" * 32),
    payload_keys=SecretStr("test:" + "33" * 32),  # a test-only key: histories in tests are encrypted too
    seal_keys=SecretStr("test:" + "44" * 32),  # OTP codes travel sealed (otp/delivery.py)
    review_threshold_minor={"USD": 100_000, "EUR": 100_000},
    fx_quote_ttl_s=60,
)


@pytest.fixture
async def bank(temporal_address: str, migrated_db_url: str) -> AsyncIterator[Bank]:
    client = await connect(TEST_SETTINGS, temporal_address)
    engine = make_engine(migrated_db_url, pool_size=10)
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(CURRENCIES)
    task_queue = f"transfers-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(client, engine=engine, settings=TEST_SETTINGS, task_queue=task_queue, executor=executor)
        async with worker:
            yield Bank(client=client, ledger=ledger, task_queue=task_queue, sealer=load_sealer(TEST_SETTINGS))
    engine.dispose()
