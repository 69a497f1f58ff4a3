"""Builds the Temporal worker: activities with their dependencies, workflows, options.

Used by the worker process (`python -m worker`) and by tests, so both register the same
things with the same options.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from activities.health import HealthActivities
from activities.reconciliation import ReconciliationActivities
from activities.standing_order import StandingOrderActivities
from activities.transfer import TransferActivities, TransferPolicy
from config.settings import Settings
from fx.rates import TableRateProvider
from ledger.service import Ledger
from security.converter import with_encryption
from workflows.health import HealthCheckWorkflow
from workflows.reconciliation import ReconciliationWorkflow, ScheduledReconciliationWorkflow
from workflows.standing_order import StandingOrderRunWorkflow
from workflows.transfer import TransferWorkflow


def transfer_policy(settings: Settings) -> TransferPolicy:
    return TransferPolicy(
        otp_key=settings.otp_key_bytes(),
        review_threshold_minor=dict(settings.review_threshold_minor),
        fx_quote_ttl_s=settings.fx_quote_ttl_s,
    )


def build_worker(
    client: Client, *, engine: Engine, settings: Settings, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    # Whoever built the client, the worker reads and writes encrypted payloads.
    client = with_encryption(client, settings)
    health = HealthActivities(engine)
    transfers = TransferActivities(Ledger(engine), TableRateProvider(engine), transfer_policy(settings))
    # The reconciliation activities ask Temporal whether stuck transfers still have a workflow.
    reconciliation = ReconciliationActivities(engine, client)
    standing_orders = StandingOrderActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            HealthCheckWorkflow,
            TransferWorkflow,
            ReconciliationWorkflow,
            ScheduledReconciliationWorkflow,
            StandingOrderRunWorkflow,
        ],
        activities=[
            health.db_ping,
            transfers.initiate_transfer,
            transfers.verify_otp,
            transfers.set_transfer_status,
            transfers.fetch_fx_quote,
            transfers.post_transfer,
            transfers.close_transfer,
            *reconciliation.all(),
            standing_orders.begin_run,
        ],
        # Activities are synchronous (psycopg): they run on this thread pool, one
        # pooled database connection each at most.
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        # Every transfer step is a local activity on the same executor (see workflows/transfer.py).
        max_concurrent_local_activities=executor._max_workers,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=settings.worker_workflow_pollers),
        nonsticky_to_sticky_poll_ratio=settings.worker_nonsticky_poll_ratio,
    )
