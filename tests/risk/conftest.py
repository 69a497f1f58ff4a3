"""The risk suite's stack: a migrated database, a worker with risk review on, the outbox
relay publishing to the session's Kafka, and the risk consumer (which a test can pause, as if
it were not running), all on real PostgreSQL, Temporal and Kafka."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaException
from sqlalchemy import Engine

from config.settings import Settings
from ledger.db import make_engine
from ledger.service import Ledger
from relay.options import ConsumerOptions
from relay.publisher import OutboxRelay
from relay.risk import RiskConsumer
from relay.topics import ensure_topics
from security.sealed import load_sealer
from tests.relay.helpers import FAST, Tail, Threads
from tests.workflows.conftest import TEST_SETTINGS
from tests.workflows.helpers import CURRENCIES, Bank
from worker.build import build_worker
from worker.temporal_client import connect

RISK_WAIT_S = 4


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    """A pool on the migrated database, for the suites that need no stack (facts, delivery)."""
    engine = make_engine(migrated_db_url, pool_size=4)
    try:
        yield engine
    finally:
        engine.dispose()


class PausableRiskConsumer(RiskConsumer):
    """The real consumer; while `paused` is set it neither consumes nor delivers (as if its
    process were down: the events wait in Kafka, the verdicts in the table)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.paused = threading.Event()

    def poll_once(self) -> int:
        if self.paused.is_set():
            threading.Event().wait(0.05)
            return 0
        return super().poll_once()


def new_tail(bootstrap: str) -> Tail:
    """A Tail, once every partition has a leader (a topic created just now may not yet)."""
    for _ in range(100):
        try:
            return Tail(bootstrap)
        except KafkaException:
            time.sleep(0.3)
    return Tail(bootstrap)


@dataclass
class RiskStack:
    bank: Bank
    engine: Engine
    db_url: str  # for psycopg
    consumer: PausableRiskConsumer
    tail: Tail
    bootstrap: str
    settings: Settings


@pytest.fixture
def threads() -> Iterator[Threads]:
    running = Threads()
    try:
        yield running
    finally:
        running.close()
    assert not running.errors, running.errors


@pytest.fixture
async def risk_stack(
    temporal_address: str, migrated_db_url: str, kafka_bootstrap: str, threads: Threads
) -> AsyncIterator[RiskStack]:
    ensure_topics(kafka_bootstrap)
    settings = TEST_SETTINGS.model_copy(
        update={"risk_enabled": True, "risk_wait_s": RISK_WAIT_S, "temporal_address": temporal_address}
    )
    client = await connect(settings, temporal_address)
    engine = make_engine(migrated_db_url, pool_size=10)
    ledger = Ledger(engine)
    ledger.ensure_house_accounts(CURRENCIES)
    tail = new_tail(kafka_bootstrap)
    threads.start(OutboxRelay(engine, kafka_bootstrap, FAST).run, "relay")
    consumer = PausableRiskConsumer(
        engine,
        kafka_bootstrap,
        settings,
        group_id=f"risk-test-{uuid.uuid4().hex[:8]}",
        options=ConsumerOptions(poll_timeout_s=0.1, backoff_max_s=2.0),
        start_offsets=tail.start,
    )
    consumer.subscribe()
    threads.start(consumer.run, "risk")
    task_queue = f"risk-e2e-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(max_workers=8) as executor:
            worker = build_worker(client, engine=engine, settings=settings, task_queue=task_queue, executor=executor)
            async with worker:
                yield RiskStack(
                    bank=Bank(client=client, ledger=ledger, task_queue=task_queue, sealer=load_sealer(TEST_SETTINGS)),
                    engine=engine,
                    db_url=migrated_db_url.replace("+psycopg", ""),
                    consumer=consumer,
                    tail=tail,
                    bootstrap=kafka_bootstrap,
                    settings=settings,
                )
    finally:
        threads.close()
        engine.dispose()
