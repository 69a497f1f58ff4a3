"""The Temporal dev server is real: a workflow runs to completion through a real worker."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from pydantic import SecretStr
from sqlalchemy import create_engine

from config.settings import Settings
from worker.build import build_worker
from worker.temporal_client import connect
from workflows.health import HealthCheckWorkflow


async def test_workflow_runs_to_completion(temporal_address: str, db_url: str) -> None:
    settings = Settings(payload_keys=SecretStr("smoke:" + "44" * 32))
    client = await connect(settings, temporal_address)
    engine = create_engine(db_url)
    task_queue = f"smoke-{uuid.uuid4().hex[:8]}"
    probe = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with build_worker(client, engine=engine, settings=settings, task_queue=task_queue, executor=executor):
            result = await client.execute_workflow(
                HealthCheckWorkflow.run,
                probe,
                id=f"health-{probe}",
                task_queue=task_queue,
            )
    engine.dispose()
    assert result.probe_id == probe
    assert result.server_version.startswith("18")
    history = await client.get_workflow_handle(f"health-{probe}").fetch_history()
    kinds = [e.event_type for e in history.events]
    assert len(kinds) >= 10  # scheduled, started, completed activity etc. really happened
