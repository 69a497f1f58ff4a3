"""The worker process: `python -m worker`."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

from config.settings import get_settings
from ledger.db import make_engine
from worker.build import build_worker

log = logging.getLogger("ledgerflow.worker")


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    with ThreadPoolExecutor(max_workers=settings.db_pool_size) as executor:
        worker = build_worker(
            client, engine=engine, settings=settings, task_queue=settings.temporal_task_queue, executor=executor
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            log.info("worker ready on task queue %s", settings.temporal_task_queue)
            await stop.wait()
            log.info("worker stopping: finishing in-flight activities")
    engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
