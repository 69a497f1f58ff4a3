"""The API under test for reconciliation, reversals and statements: the tests/api harness
(uvicorn, a database at alembic head, the Temporal dev server) with a worker that also runs
the reconciliation workflows and activities.

The worker is worker.build.build_worker's, plus the reconciliation parts when build_worker
does not register them yet (so these tests run before and after the integration).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine

from config.settings import get_settings
from stack import postgres
from stack.ephemeral import PgServer
from stack.service import free_port
from tests import totp_auth
from tests.api.conftest import Api, ApiServer, bearer, new_key
from tests.harness import WorkerThread


@pytest.fixture(scope="package")
def recon_database(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    name = f"recon_{uuid.uuid4().hex[:12]}"
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
def api(recon_database: str, temporal_address: str) -> Iterator[Api]:
    from api.seed import seed_dev

    home = tempfile.mkdtemp(prefix="ledgerflow-recon-")
    env = {
        # Seal keys and the dev admin's TOTP file of this test stack, not the developer's.
        "LEDGERFLOW_HOME": home,
        "LEDGERFLOW_SEAL_KEYS": totp_auth.seal_keys(),
        "LEDGERFLOW_DATABASE_URL": recon_database,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": f"recon-tests-{uuid.uuid4().hex[:8]}",
        # Nothing listens here (no test reaches Kafka).
        "LEDGERFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "LEDGERFLOW_OTP_KEY": secrets.token_hex(32),
        # Payload encryption keys from here, not from a key file under the developer's home.
        "LEDGERFLOW_PAYLOAD_KEYS": f"recon-test:{secrets.token_hex(32)}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        admin_uri = seed_dev(recon_database, settings)
        worker = WorkerThread(settings, recon_database)
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
    engine = create_engine(recon_database)
    try:
        yield Api(f"http://127.0.0.1:{server.port}", recon_database, engine, settings, admin_totp_uri=admin_uri)
    finally:
        server.stop()
        worker.stop()
        engine.dispose()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def http(api: Api) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class StaffMember:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


def staff_member(api: Api, http: httpx.Client, role: str) -> StaffMember:
    """A new staff member with `role`, enrolled in TOTP (tests/totp_auth.py) and signed in."""
    member = api.staff_member(http, role)
    return StaffMember(member.id, member.token)


@dataclass
class Customer:
    id: str
    token: str
    account: dict[str, Any]


def customer(api: Api, http: httpx.Client, name: str, currency: str = "USD") -> Customer:
    body, token = api.signup(http, name)
    return Customer(str(body["customer_id"]), token, api.open_account(http, token, currency))


def deposit(http: httpx.Client, operator: StaffMember, account: dict[str, Any], amount_minor: int, ref: str) -> None:
    body = {
        "account_id": account["id"],
        "amount_minor": amount_minor,
        "currency": account["currency"],
        "external_reference": ref,
    }
    r = http.post("/ops/v1/deposits", json=body, headers=operator.auth | {"Idempotency-Key": new_key()})
    assert r.status_code == 201, r.text


def posted_transfer(api: Api, http: httpx.Client, payer: Customer, payee: Customer, amount_minor: int) -> str:
    """A transfer from payer to payee taken through its OTP to `posted`; its id."""
    r = http.post(
        "/v1/transfers",
        json={
            "source_account_id": payer.account["id"],
            "destination_account_id": payee.account["id"],
            "amount_minor": amount_minor,
            "currency": payer.account["currency"],
        },
        headers=bearer(payer.token) | {"Idempotency-Key": new_key()},
    )
    assert r.status_code == 201, r.text
    transfer_id = str(r.json()["id"])
    code = api.otp_code(transfer_id)
    r = http.post(f"/v1/transfers/{transfer_id}/otp", json={"code": code}, headers=bearer(payer.token))
    assert r.status_code == 200, r.text
    wait_for(lambda: api.sql("SELECT status FROM transfers WHERE id = %s", transfer_id)[0][0] == "posted")
    return transfer_id


def wait_for(condition: Any, timeout_s: float = 20, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval_s)


def tamper(api: Api, query: str, *params: Any) -> None:
    """Run `query` as the superuser with triggers off (session_replication_role = replica):
    what someone bypassing every guard of the application could do."""
    with psycopg.connect(api.pg_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(query, params)


def relay_caught_up(api: Api) -> None:
    """What a healthy relay does: every outbox row published (these tests run no relay)."""
    api.sql("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")


def run_reconciliation(http: httpx.Client, operator: StaffMember, timeout_s: float = 30) -> dict[str, Any]:
    """Start a run from the API and wait for its outcome."""
    r = http.post("/ops/v1/reconciliation/runs", headers=operator.auth)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert r.json()["status"] in ("queued", "running")
    deadline = time.monotonic() + timeout_s
    while True:
        got = http.get(f"/ops/v1/reconciliation/runs/{run_id}", headers=operator.auth)
        assert got.status_code == 200, got.text
        if got.json()["status"] in ("passed", "failed"):
            return dict(got.json())
        assert time.monotonic() < deadline, got.json()
        time.sleep(0.1)


def checks_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in run["checks"]}
