"""A running Ledgerflow for browser tests and `scripts/screenshots.py`: a fresh database at alembic
head, an in-process Temporal worker on its own task queue, the relay (`python -m relay`) for
the inbox, and uvicorn serving the API with both portals. Everything is real; nothing is mocked.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import uvicorn
from fastapi import FastAPI
from psycopg import sql

from config.settings import Settings, get_settings
from otp.delivery import open_code
from security.sealed import load_sealer
from stack import postgres
from stack.ephemeral import PgServer
from stack.service import free_port
from tests import totp_auth
from tests.harness import WorkerThread
from tests.totp_auth import Authenticator

REPO: Final = Path(__file__).resolve().parents[2]
ADMIN: Final = ("admin@ledgerflow.local", "admin-password")
STAFF_PASSWORD: Final = "staff-password-1"
CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def create_database(pg: PgServer, template: str | None = None) -> str:
    """A new database (a copy of `template` when given); returns its URL."""
    name = f"portal_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=pg.host, port=pg.port, user="postgres", dbname="postgres", autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg.url(name)


def drop_database(pg: PgServer, url: str) -> None:
    postgres.drop_database(host=pg.host, port=pg.port, dbname=url.rsplit("/", 1)[1])


def build_app() -> FastAPI:
    """The API app with both portals (`portal.install` is a no-op once api/app.py calls it)."""
    import portal
    from api.app import create_app

    app = create_app()
    portal.install(app)
    return app


class ServerThread:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self.server.run, name="portal-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)


class RelayProcess:
    """`python -m relay` (publisher + notifier): it turns `notification.requested` outbox rows
    into inbox messages, the way production delivers OTP codes."""

    READY: Final = "relay ready"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay"], cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout_s: float = 90) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.READY in self.log_path.read_text(errors="replace"):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@dataclass
class PortalStack:
    base_url: str
    database_url: str
    settings: Settings
    relay_running: bool
    app: FastAPI
    staff: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Each staff member's otpauth:// URI (TOTP is mandatory for staff).
    totp: dict[str, str] = field(default_factory=dict)

    def totp_code(self, who: str) -> str:
        """A code of a time step not used before for this member (tests/totp_auth.py)."""
        return Authenticator.of(self.totp[who]).code()

    @property
    def pg_url(self) -> str:
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def otp_from_outbox(self, transfer_id: str, timeout_s: float = 15) -> str:
        """The code from the transfer's `notification.requested` outbox row: only for when the
        relay cannot run (the inbox is the real path)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.sql(
                "SELECT payload -> 'data' FROM outbox WHERE type = 'notification.requested' AND key = %s "
                "ORDER BY seq DESC LIMIT 1",
                transfer_id,
            )
            # Sealed in the row (otp/delivery.py): opened with the stack's seal key.
            if rows and (code := open_code(load_sealer(self.settings), rows[0][0])):
                return code
            if time.monotonic() > deadline:
                raise AssertionError(f"no OTP notification for {transfer_id}")
            time.sleep(0.1)


@contextmanager
def running_portal(
    database_url: str,
    temporal_address: str,
    kafka_bootstrap: str | None,
    work_dir: Path,
    *,
    temporal_ui_port: int | None = None,
) -> Iterator[PortalStack]:
    """Seed the database, start worker, relay (when Kafka is given) and server; stop them after."""
    from api.seed import create_staff, seed_dev

    env = {
        "LEDGERFLOW_DATABASE_URL": database_url,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": f"portal-{uuid.uuid4().hex[:8]}",
        # Without Kafka nothing must listen there (the API only probes it for /readyz).
        "LEDGERFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap or f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_OTP_KEY": secrets.token_hex(32),
        "LEDGERFLOW_PAYLOAD_KEYS": "test:" + secrets.token_hex(32),
        "LEDGERFLOW_HOME": str(work_dir),
        "LEDGERFLOW_SEAL_KEYS": totp_auth.seal_keys(),
    }
    if temporal_ui_port is not None:
        # The ops portal forwards /ops/temporal/ to the Temporal Web UI on this port.
        env["LEDGERFLOW_TEMPORAL_UI_PORT"] = str(temporal_ui_port)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    relay: RelayProcess | None = None
    worker: WorkerThread | None = None
    server: ServerThread | None = None
    try:
        try:
            settings = get_settings()
            # The dev admin and the staff of the tests, each with TOTP on (the secrets are the
            # tests' authenticator apps: tests/totp_auth.py).
            totp = {"admin": seed_dev(database_url, settings)}
            staff: dict[str, tuple[str, str]] = {"admin": ADMIN}
            for name, role in (
                ("operator", "operator"),
                ("operator2", "operator"),
                ("approver", "approver"),
                ("auditor", "auditor"),
            ):
                email = f"{name}-{uuid.uuid4().hex[:6]}@ledgerflow.test"
                created = create_staff(database_url, email, STAFF_PASSWORD, role, settings=settings, totp="enabled")
                staff[name] = (email, STAFF_PASSWORD)
                totp[name] = created.otpauth_uri
            worker = WorkerThread(settings, database_url)
            worker.start()
            server = ServerThread(build_app(), free_port())
            server.start()  # the app reads its settings at start-up (lifespan)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            get_settings.cache_clear()
        relay_ready = False
        if kafka_bootstrap:
            relay_env = {**os.environ, **env, "LEDGERFLOW_RELAY_GROUP_PREFIX": f"portal-{uuid.uuid4().hex[:8]}"}
            relay = RelayProcess(relay_env, work_dir / "relay.log")
            relay_ready = relay.wait_ready()
        yield PortalStack(
            f"http://127.0.0.1:{server.port}", database_url, settings, relay_ready, server.app, staff, totp
        )
    finally:
        if relay is not None:
            relay.stop()
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
