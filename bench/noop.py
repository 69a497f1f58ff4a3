"""The floor of the workflow benchmark: a bare workflow with one no-op activity."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker


@activity.defn(name="noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="Noop")
class NoopWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(noop, value, start_to_close_timeout=timedelta(seconds=10))


async def main() -> None:
    client = await Client.connect(os.environ["LEDGERFLOW_TEMPORAL_ADDRESS"])
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    # The same poller settings as the transfer worker (worker/build.py), so that the ratio
    # compares workflows, not worker tuning.
    # Imported here, not at the top: the workflow sandbox imports this module afresh for
    # every run, and the settings module (pydantic-settings) is not passed through, so at the
    # top it was imported again for each bare workflow. The floor then measured that import:
    # 47 ms of this worker's CPU per workflow against 10 ms without it, and 20 instead of
    # 44 workflows/s (2026-12-04, same machine and server).
    from config.settings import Settings

    settings = Settings()
    async with Worker(
        client,
        task_queue=os.environ["LEDGERFLOW_TEMPORAL_TASK_QUEUE"],
        workflows=[NoopWorkflow],
        activities=[noop],
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=settings.worker_workflow_pollers),
        nonsticky_to_sticky_poll_ratio=settings.worker_nonsticky_poll_ratio,
    ):
        print("worker ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
