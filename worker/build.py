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
from activities.retention import RetentionActivities
from activities.standing_order import StandingOrderActivities
from activities.transfer import TransferActivities, TransferPolicy
from config.settings import Settings
from fx.rates import TableRateProvider
from ledger.service import Ledger
from recon.retention import DAY_S, RetentionPolicy
from relay.topics import TOPICS
from security.converter import with_encryption
from security.sealed import load_sealer
from workflows.health import HealthCheckWorkflow
from workflows.reconciliation import ReconciliationWorkflow, ScheduledReconciliationWorkflow
from workflows.retention import RetentionSweepWorkflow
from workflows.standing_order import StandingOrderRunWorkflow
from workflows.transfer import TransferWorkflow


def transfer_policy(settings: Settings) -> TransferPolicy:
    return TransferPolicy(
        otp_key=settings.otp_key_bytes(),
        review_threshold_minor=dict(settings.review_threshold_minor),
        fx_quote_ttl_s=settings.fx_quote_ttl_s,
        risk_wait_s=settings.risk_wait_s if settings.risk_enabled else 0,
    )


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The sweep's policy from settings. Dedupe rows outlive every copy of an event a consumer
    may still receive: the longest topic retention, and the outbox's own (a relay crash may
    republish a row as long as it is in the outbox)."""
    longest_topic_s = max(spec.retention_ms for spec in TOPICS) // 1000
    return RetentionPolicy(
        outbox_days=settings.outbox_retention_days,
        dedupe_s=max(longest_topic_s, settings.outbox_retention_days * DAY_S),
        idempotency_s=settings.idempotency_retention_h * 3600,
        batch_rows=settings.retention_batch_rows,
    )


def build_worker(
    client: Client, *, engine: Engine, settings: Settings, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    # Whoever built the client, the worker reads and writes encrypted payloads.
    client = with_encryption(client, settings)
    health = HealthActivities(engine)
    transfers = TransferActivities(
        Ledger(engine), TableRateProvider(engine), transfer_policy(settings), load_sealer(settings)
    )
    # The reconciliation activities ask Temporal whether stuck transfers still have a workflow.
    reconciliation = ReconciliationActivities(engine, client)
    retention = RetentionActivities(engine)
    standing_orders = StandingOrderActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            HealthCheckWorkflow,
            TransferWorkflow,
            ReconciliationWorkflow,
            ScheduledReconciliationWorkflow,
            RetentionSweepWorkflow,
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
            transfers.record_risk_decision,
            *reconciliation.all(),
            retention.start,
            retention.sweep_batch,
            retention.finish,
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
