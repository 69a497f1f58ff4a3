"""The system under attack: the real API (uvicorn) and an in-process transfer worker, both with
the encrypting Temporal data converter, on a database of their own and the session's Temporal.

Differences from tests/api's fixture, on purpose:
- payload keys are set explicitly (two, to exercise rotation) and `home` is a temporary
  directory, so nothing reads or writes a key file of the developer's stack;
- uvicorn does not install its own logging config, so its access and error logs reach the
  root logger (and caplog) like everything else the run logs;
- two routes that fail on purpose are mounted, to check what an internal error looks like.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI, Request
from psycopg import sql
from sqlalchemy import create_engine, text

from config.settings import get_settings
from stack import postgres
from stack.ephemeral import PgServer
from stack.service import free_port
from tests import totp_auth
from tests.api.conftest import Api
from tests.harness import WorkerThread

ACTIVE_KEY_ID = "sec-2"
OLD_KEY_ID = "sec-1"


class FailingRoutesError(RuntimeError):
    pass


def add_failing_routes(app: FastAPI) -> None:
    """Routes that fail the way real bugs do: a database error carrying SQL, and a plain
    exception whose message looks like something internal."""

    @app.get("/__test__/sql-error", include_in_schema=False)
    def sql_error(request: Request) -> dict[str, str]:
        with request.app.state.runtime.engine.connect() as conn:
            conn.execute(text("SELECT secret_column FROM no_such_table WHERE id = :id"), {"id": 1})
        return {}

    @app.get("/__test__/crash", include_in_schema=False)
    async def crash() -> dict[str, str]:
        raise FailingRoutesError("boom in /srv/ledgerflow/api/internal.py: SELECT * FROM staff")


class ApiServer:
    def __init__(self, port: int) -> None:
        from api.app import create_app

        self.app = create_app()
        add_failing_routes(self.app)
        self.port = port
        # log_config=None: uvicorn leaves logging alone, so its records reach the root logger.
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="security-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("API server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)


@dataclass
class SecApi(Api):
    """tests/api's helpers plus what the security tests need to reach."""

    server: ApiServer | None = None
    temporal_address: str = ""
    payload_keys: str = ""

    @property
    def runtime(self) -> Any:
        assert self.server is not None
        return self.server.app.state.runtime

    @property
    def app(self) -> FastAPI:
        assert self.server is not None
        return self.server.app


@pytest.fixture(scope="package")
def sec_database(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    name = f"sec_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=pg_server.host, port=pg_server.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(migrated_template))
        )
    try:
        yield pg_server.url(name)
    finally:
        postgres.drop_database(host=pg_server.host, port=pg_server.port, dbname=name)


@pytest.fixture(scope="package")
def sec(sec_database: str, temporal_address: str) -> Iterator[SecApi]:
    from api.seed import seed_dev

    home = Path(tempfile.mkdtemp(prefix="ledgerflow-sec-"))
    payload_keys = f"{ACTIVE_KEY_ID}:{secrets.token_hex(32)},{OLD_KEY_ID}:{secrets.token_hex(32)}"
    env = {
        "LEDGERFLOW_HOME": str(home),
        "LEDGERFLOW_SEAL_KEYS": totp_auth.seal_keys(),
        "LEDGERFLOW_DATABASE_URL": sec_database,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": f"security-tests-{uuid.uuid4().hex[:8]}",
        # Nothing listens here (the API only builds a Kafka admin client for /readyz).
        "LEDGERFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_OTP_KEY": secrets.token_hex(32),
        "LEDGERFLOW_PAYLOAD_KEYS": payload_keys,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        admin_uri = seed_dev(sec_database, settings)
        worker = WorkerThread(settings, sec_database)
        worker.start()
        server = ApiServer(free_port())
        server.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    engine = create_engine(sec_database)
    try:
        yield SecApi(
            f"http://127.0.0.1:{server.port}",
            sec_database,
            engine,
            settings,
            admin_totp_uri=admin_uri,
            server=server,
            temporal_address=temporal_address,
            payload_keys=payload_keys,
        )
    finally:
        server.stop()
        worker.stop()
        engine.dispose()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def http(sec: SecApi) -> Iterator[httpx.Client]:
    with sec.client() as client:
        yield client
