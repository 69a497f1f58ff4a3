"""Probes for `/readyz`: is each part the API depends on reachable right now?"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.client import Client


@dataclass(frozen=True)
class PartStatus:
    name: str
    ok: bool
    detail: str


async def check_postgres(engine: Engine) -> PartStatus:
    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout=2)
        return PartStatus("postgresql", True, "reachable")
    except Exception as err:  # any failure means "not ready"; the name says which part
        return PartStatus("postgresql", False, type(err).__name__)


async def check_temporal(client: Client | None) -> PartStatus:
    if client is None:
        return PartStatus("temporal", False, "not connected")
    try:
        ok = await asyncio.wait_for(client.service_client.check_health(), timeout=2)
        return PartStatus("temporal", bool(ok), "reachable" if ok else "unhealthy")
    except Exception as err:
        return PartStatus("temporal", False, type(err).__name__)


async def check_kafka(admin: AdminClient) -> PartStatus:
    def probe() -> int:
        return len(admin.list_topics(timeout=2).brokers)

    try:
        brokers = await asyncio.wait_for(asyncio.to_thread(probe), timeout=3)
        return PartStatus("kafka", brokers > 0, f"{brokers} broker(s)")
    except Exception as err:
        return PartStatus("kafka", False, type(err).__name__)
