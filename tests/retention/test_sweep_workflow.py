"""The RetentionSweep workflow on the real Temporal dev server and worker: batch after batch
until each target is done, continuing as new when a run has done its share, its progress
query, and the run record it leaves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from ledger.db import make_engine
from recon.retention import RetentionPolicy
from recon.retention_io import SweepInput, SweepProgress
from tests.workflows.conftest import TEST_SETTINGS
from worker.build import build_worker
from worker.temporal_client import connect


@pytest.fixture
async def sweeper(temporal_address: str, migrated_db_url: str) -> AsyncIterator[tuple[Client, str, str]]:
    client = await connect(TEST_SETTINGS, temporal_address)
    engine = make_engine(migrated_db_url, pool_size=4)
    task_queue = f"retention-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker = build_worker(client, engine=engine, settings=TEST_SETTINGS, task_queue=task_queue, executor=executor)
        async with worker:
            yield client, task_queue, migrated_db_url.replace("+psycopg", "")
    engine.dispose()


async def test_the_sweep_runs_batch_by_batch_and_continues_as_new(sweeper: tuple[Client, str, str]) -> None:
    client, task_queue, pg_url = sweeper
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO login_failures (realm, username, ip, failed_at) "
            "SELECT 'customer', 'u' || n, '10.0.0.1', now() - interval '1 day' FROM generate_series(1, 5) n"
        )
        conn.execute(
            "INSERT INTO login_failures (realm, username, ip, failed_at) "
            "VALUES ('customer', 'fresh', '10.0.0.1', now())"
        )

    # One row per batch, two batches per run: the five old rows take several runs.
    request = SweepInput(policy=RetentionPolicy(batch_rows=1), max_batches_per_run=2)
    workflow_id = f"retention-test-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "RetentionSweep", request, id=workflow_id, task_queue=task_queue, result_type=SweepProgress
    )
    result = await handle.result()

    assert result.done and result.removed["login_failures"] == 5
    first_run = await client.get_workflow_handle(workflow_id, run_id=handle.first_execution_run_id).fetch_history()
    assert first_run.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    progress = await client.get_workflow_handle(workflow_id).query("progress", result_type=SweepProgress)
    assert progress == result

    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert [r[0] for r in conn.execute("SELECT username FROM login_failures").fetchall()] == ["fresh"]
        runs = conn.execute("SELECT id::text, status, removed, batches FROM retention_runs").fetchall()
    # One record for the whole sweep, across its runs, with the same counts as the workflow.
    assert len(runs) == 1
    run_id, run_status, removed, batches = runs[0]
    assert run_id == result.run_id and run_status == "completed" and batches == result.batches
    assert {k: int(v) for k, v in removed.items()} == result.removed
