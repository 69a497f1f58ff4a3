"""The real stack as processes: `python -m worker`, `python -m relay` and the API under uvicorn,
each logging to its own file, on a database of their own, the session's Temporal and Kafka.

Processes rather than threads, so that "the logs of the processes" are files to scan, as in
production, and the worker's start-up (schedules included) is the real one. OTPs expire after
OTP_TTL_S here, so a test can watch one expire.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from config.settings import Settings
from stack.ephemeral import EphemeralStack, PgServer
from stack.service import free_port
from tests.portal.harness import REPO, create_database, drop_database

OTP_TTL_S: Final = 20


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class ProcessStack:
    base_url: str
    pg_url: str
    env: dict[str, str]
    settings: Settings
    work: Path
    kafka_data: Path
    infra_logs: Path
    procs: list[Proc] = field(default_factory=list)
    admin_totp_uri: str = ""

    @property
    def task_queue(self) -> str:
        return self.env["LEDGERFLOW_TEMPORAL_TASK_QUEUE"]

    def sql(self, query: Any, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


def _start(name: str, args: list[str], env: dict[str, str], logs: Path) -> Proc:
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Proc(name, popen, log_path)


def _wait(proc: Proc, ready: Any, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not start:\n{proc.log()[-3000:]}")
        time.sleep(0.2)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="package")
def process_stack(
    pg_server: PgServer,
    migrated_template: str,
    temporal_address: str,
    kafka_bootstrap: str,
    test_stack: EphemeralStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProcessStack]:
    from api.seed import seed_dev

    url = create_database(pg_server, migrated_template)
    work = Path(tmp_path_factory.mktemp("otp-at-rest"))
    logs = work / "logs"
    logs.mkdir()
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "LEDGERFLOW_HOME": str(work),
        "LEDGERFLOW_DATABASE_URL": url,
        "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
        "LEDGERFLOW_TEMPORAL_TASK_QUEUE": f"otp-at-rest-{suffix}",
        "LEDGERFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEDGERFLOW_RELAY_GROUP_PREFIX": f"otp-at-rest-{suffix}",
        "LEDGERFLOW_API_PORT": str(port),
        "LEDGERFLOW_OTP_TTL_S": str(OTP_TTL_S),
        "LEDGERFLOW_OTP_KEY": secrets.token_hex(32),
        "LEDGERFLOW_PAYLOAD_KEYS": "otp-at-rest:" + secrets.token_hex(32),
        "LEDGERFLOW_SEAL_KEYS": "otp-at-rest:" + secrets.token_hex(32),
    }
    settings = Settings(
        home=work,
        database_url=url,
        temporal_address=temporal_address,
        temporal_task_queue=env["LEDGERFLOW_TEMPORAL_TASK_QUEUE"],
        payload_keys=SecretStr(env["LEDGERFLOW_PAYLOAD_KEYS"]),
        seal_keys=SecretStr(env["LEDGERFLOW_SEAL_KEYS"]),
    )
    # With this stack's seal keys: the dev admin's TOTP secret is sealed with them.
    admin_totp_uri = seed_dev(url, settings)
    stack = ProcessStack(
        f"http://127.0.0.1:{port}",
        url.replace("postgresql+psycopg://", "postgresql://", 1),
        env,
        settings,
        work,
        kafka_data=test_stack.settings.home / "kafka" / "data",
        infra_logs=test_stack.settings.home / "logs",
        admin_totp_uri=admin_totp_uri,
    )
    try:
        worker = _start("worker", ["-m", "worker"], env, logs)
        stack.procs.append(worker)
        relay = _start("relay", ["-m", "relay"], env, logs)
        stack.procs.append(relay)
        # Access log on: the scan must see request lines (paths with transfer ids) to mean anything.
        api = _start("api", ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)], env, logs)
        stack.procs.append(api)
        _wait(worker, lambda: "worker ready" in worker.log())
        _wait(relay, lambda: "relay ready" in relay.log())
        _wait(api, lambda: _http_ok(f"{stack.base_url}/healthz"))
        yield stack
    finally:
        for proc in reversed(stack.procs):
            if proc.popen.poll() is None:
                proc.popen.terminate()
                try:
                    proc.popen.wait(30)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait(10)
        drop_database(pg_server, url)
