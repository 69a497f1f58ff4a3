"""Shared test harness: the Temporal worker on its own event-loop thread.

Used by the API, security, portal and reconciliation suites, which run the real app in a
thread and need a real worker beside it (same registrations and options as `python -m worker`,
same encrypting data converter as the API).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from config.settings import Settings


class WorkerThread:
    """A Temporal worker (worker.build.build_worker) running on its own event loop thread."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="temporal-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"worker did not start: {self._error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:
            self._error = err
            self._ready.set()

    async def _main(self) -> None:
        from ledger.db import make_engine
        from worker.build import build_worker
        from worker.temporal_client import connect

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = await connect(self.settings)
        engine = make_engine(self.database_url, pool_size=8, application_name="test-worker")
        with ThreadPoolExecutor(max_workers=8) as executor:
            worker = build_worker(
                client,
                engine=engine,
                settings=self.settings,
                task_queue=self.settings.temporal_task_queue,
                executor=executor,
            )
            async with worker:
                self._ready.set()
                await self._stop.wait()
        engine.dispose()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
