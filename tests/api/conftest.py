"""The API under test: a real uvicorn server on a free port, a real PostgreSQL database at
alembic head, a real Temporal dev server and an in-process transfer worker on its own task
queue. One of each for the whole tests/api package (each test makes its own customers,
so tests do not see each other's data).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg import sql
from sqlalchemy import Engine, create_engine

from config.settings import Settings, get_settings
from otp.delivery import open_code
from security.sealed import load_sealer
from stack import postgres
from stack.ephemeral import PgServer
from stack.service import free_port
from tests import totp_auth
from tests.harness import WorkerThread
from tests.totp_auth import Authenticator

ADMIN_EMAIL = "admin@ledgerflow.local"
ADMIN_PASSWORD = "admin-password"


class ApiServer:
    """uvicorn serving api.app.create_app() in a background thread."""

    def __init__(self, port: int) -> None:
        from api.app import create_app

        self.app = create_app()
        self.port = port
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

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
class Api:
    """Everything a test needs: the HTTP base URL, the database, helpers for common steps."""

    base_url: str
    database_url: str
    engine: Engine
    settings: Settings
    # The dev admin's otpauth:// URI (what the seed wrote to <home>/secrets/dev-admin-totp).
    admin_totp_uri: str = ""
    _admin_token: str | None = field(default=None, repr=False)

    @property
    def pg_url(self) -> str:
        """The database URL for psycopg (libpq does not know SQLAlchemy's driver suffix)."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    # -- helpers used across test modules ----------------------------------------------

    def signup(self, http: httpx.Client, name: str = "Test Customer") -> tuple[dict[str, Any], str]:
        email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:10]}@example.test"
        password = secrets.token_urlsafe(12)
        r = http.post("/v1/signup", json={"email": email, "password": password, "full_name": name})
        assert r.status_code == 201, r.text
        token = self.login(http, "/v1", email, password)
        return r.json(), token

    def login(
        self, http: httpx.Client, realm: str, username: str, password: str, device: Authenticator | None = None
    ) -> str:
        r = totp_auth.login(http, realm, username, password, device)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and body["expires_in"] > 0
        return str(body["access_token"])

    @property
    def admin_device(self) -> Authenticator:
        return Authenticator.of(self.admin_totp_uri)

    def admin_login(self, http: httpx.Client) -> str:
        """A new admin token (password and a fresh TOTP step)."""
        return self.login(http, "/ops/v1", ADMIN_EMAIL, ADMIN_PASSWORD, self.admin_device)

    def admin_token(self, http: httpx.Client) -> str:
        """The admin's token, signed in once per package: every staff login spends a TOTP step,
        and a step is accepted once, so the helpers do not sign the admin in again each time."""
        if self._admin_token is None:
            self._admin_token = self.admin_login(http)
        return self._admin_token

    def staff_member(self, http: httpx.Client, role: str) -> totp_auth.StaffMember:
        """A new staff member with `role` (created by the admin), enrolled in TOTP and signed in."""
        return totp_auth.new_staff(http, self.admin_token(http), role)

    def staff(self, http: httpx.Client, role: str) -> str:
        """A new staff member with `role` (created by the admin, enrolled); returns their token."""
        return self.staff_member(http, role).token

    def open_account(self, http: httpx.Client, token: str, currency: str = "USD") -> dict[str, Any]:
        r = http.post("/v1/accounts", json={"currency": currency, "label": "main"}, headers=bearer(token))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def deposit(
        self, http: httpx.Client, staff_token: str, account: dict[str, Any], amount_minor: int
    ) -> httpx.Response:
        body = {
            "account_id": account["id"],
            "amount_minor": amount_minor,
            "currency": account["currency"],
            "external_reference": f"wire-{uuid.uuid4().hex[:8]}",
        }
        r = http.post("/ops/v1/deposits", json=body, headers=bearer(staff_token) | {"Idempotency-Key": new_key()})
        assert r.status_code == 201, r.text
        return r

    def otp_code(self, transfer_id: str, timeout_s: float = 10) -> str:
        """The code from the transfer's `notification.requested` outbox row (what the notifier
        would put in the inbox)."""
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.pg_url) as conn:
            while True:
                row = conn.execute(
                    "SELECT payload -> 'data' FROM outbox WHERE type = 'notification.requested' AND key = %s",
                    (transfer_id,),
                ).fetchone()
                if row is not None:
                    # Sealed in the row (otp/delivery.py): opened with the stack's seal key.
                    code = open_code(load_sealer(self.settings), row[0])
                    assert code is not None and re.fullmatch(r"\d{6}", code), "no code in the OTP message"
                    return code
                if time.monotonic() > deadline:
                    raise AssertionError(f"no OTP notification for {transfer_id}")
                conn.commit()
                time.sleep(0.05)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


@contextmanager
def copied_database(pg_server: PgServer, template: str, prefix: str = "api") -> Iterator[str]:
    """A database copied from the migrated template, dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=pg_server.host, port=pg_server.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    try:
        yield pg_server.url(name)
    finally:
        postgres.drop_database(host=pg_server.host, port=pg_server.port, dbname=name)


@pytest.fixture(scope="package")
def api_database(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    """One database at alembic head for the package (copied from the session template)."""
    with copied_database(pg_server, migrated_template) as url:
        yield url


@contextmanager
def running_api(database_url: str, temporal_address: str) -> Iterator[Api]:
    """The API (uvicorn) and a transfer worker over `database_url`, seeded, until the block ends."""
    from api.seed import seed_dev

    home = tempfile.mkdtemp(prefix="ledgerflow-api-")
    env = {
        # Seal keys and the dev admin's TOTP file of this test stack, not the developer's.
        "LEDGERFLOW_HOME": home,
        "LEDGERFLOW_SEAL_KEYS": totp_auth.seal_keys(),
        "LEDGERFLOW_DATABASE_URL": database_url,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": f"api-tests-{uuid.uuid4().hex[:8]}",
        # Nothing listens here: the API builds a Kafka admin client for /readyz only, and these
        # tests must never reach a developer's running stack.
        "LEDGERFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_OTP_KEY": secrets.token_hex(32),
        "LEDGERFLOW_PAYLOAD_KEYS": "test:" + secrets.token_hex(32),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        admin_uri = seed_dev(database_url, settings)
        worker = WorkerThread(settings, database_url)
        worker.start()
        server = ApiServer(free_port())
        server.start()
    finally:
        # The server and worker hold their settings now; do not leak them to other packages.
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    engine = create_engine(database_url)
    try:
        yield Api(f"http://127.0.0.1:{server.port}", database_url, engine, settings, admin_totp_uri=admin_uri)
    finally:
        server.stop()
        worker.stop()
        engine.dispose()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="package")
def api(api_database: str, temporal_address: str) -> Iterator[Api]:
    with running_api(api_database, temporal_address) as running:
        yield running


@pytest.fixture
def http(api: Api) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client
