"""Builds the Temporal worker: activities with their dependencies, workflows, options.

Used by the worker process (`python -m worker`) and by tests, so both register the same
things with the same options.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.health import HealthActivities
from workflows.health import HealthCheckWorkflow


def build_worker(client: Client, *, engine: Engine, task_queue: str, executor: ThreadPoolExecutor) -> Worker:
    health = HealthActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[HealthCheckWorkflow],
        activities=[health.db_ping],
        # Activities are synchronous (SQLAlchemy, psycopg): they run on this thread pool.
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
    )
