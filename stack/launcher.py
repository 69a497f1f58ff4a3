"""Builds the embedded stack's services from settings and runs them in order.

Order matters: PostgreSQL (then migrations and the dev seed), Temporal, Kafka, and only then
the worker, the relay and the API, which need all three. Stopping goes the other way, so
nothing is left writing to a store that has already gone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH, Settings
from stack import kafka, postgres, temporal
from stack.service import Service, StackError, ensure_port_free

DB_NAME = "ledgerflow"


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Stack:
    """One embedded stack: its settings, its services and the order they run in."""

    settings: Settings
    log: Callable[[str], None] = say
    started: list[Service] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.settings.home.resolve()

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def database_url(self) -> str:
        return self.settings.database_url or postgres.database_url(
            host=self.settings.host, port=self.settings.pg_port, dbname=DB_NAME
        )

    # -- the parts -----------------------------------------------------------------------

    def postgres(self) -> Service:
        s = self.settings
        return postgres.postgres_service(
            data_dir=self.home / "pgdata", host=s.host, port=s.pg_port, log_path=self.logs / "postgresql.log"
        )

    def temporal(self, *, headless: bool = False) -> Service:
        s = self.settings
        host, port = s.temporal_address.rsplit(":", 1)
        return temporal.temporal_service(
            db_file=self.home / "temporal" / "temporal.db",
            host=host,
            port=int(port),
            ui_port=s.temporal_ui_port,
            log_path=self.logs / "temporal.log",
            headless=headless,
            # Staff open the UI through the ops portal (TEMPORAL_UI_PATH, under their login), so
            # the codec is same-origin: a path, not a URL, and it works whatever host name the
            # browser used. Opened on :8233 directly the UI has no session and shows ciphertext.
            ui_public_path=TEMPORAL_UI_PATH,
            codec_endpoint=TEMPORAL_UI_CODEC_PATH,
        )

    def kafka(self) -> Service:
        s = self.settings
        host, port = s.kafka_bootstrap.rsplit(":", 1)
        libs = kafka.ensure_kafka_libs(self.home / "kafka-dist", progress=self.log)
        return kafka.kafka_service(
            home=self.home / "kafka",
            libs=libs,
            host=host,
            port=int(port),
            controller_port=s.kafka_controller_port,
            log_path=self.logs / "kafka.log",
        )

    def python_service(self, name: str, module_args: list[str], ready: Callable[[], bool]) -> Service:
        return Service(
            name=name,
            argv=[sys.executable, *module_args],
            log_path=self.logs / f"{name}.log",
            ready=ready,
            env=self.env(),
            cwd=Path.cwd(),
            ready_timeout_s=60,
        )

    def app_services(self) -> list[Service]:
        s = self.settings
        api_url = f"http://{s.host}:{s.api_port}/healthz"
        return [
            self.python_service(
                "worker", ["-m", "worker"], ready=lambda: _log_says(self.logs / "worker.log", "worker ready")
            ),
            self.python_service(
                "relay", ["-m", "relay"], ready=lambda: _log_says(self.logs / "relay.log", "relay ready")
            ),
            self.python_service(
                "api",
                ["-m", "uvicorn", "api.app:app", "--host", s.host, "--port", str(s.api_port), "--no-access-log"],
                ready=lambda: _http_ok(api_url),
            ),
        ]

    def env(self) -> dict[str, str]:
        """The addresses every process of this stack uses (also written to stack.env)."""
        s = self.settings
        return {
            "LEDGERFLOW_HOME": str(self.home),
            "LEDGERFLOW_HOST": s.host,
            "LEDGERFLOW_DATABASE_URL": self.database_url,
            "LEDGERFLOW_PG_PORT": str(s.pg_port),
            "LEDGERFLOW_TEMPORAL_ADDRESS": s.temporal_address,
            "LEDGERFLOW_TEMPORAL_NAMESPACE": s.temporal_namespace,
            "LEDGERFLOW_TEMPORAL_TASK_QUEUE": s.temporal_task_queue,
            "LEDGERFLOW_TEMPORAL_UI_PORT": str(s.temporal_ui_port),
            "LEDGERFLOW_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "LEDGERFLOW_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "LEDGERFLOW_API_PORT": str(s.api_port),
        }

    # -- lifecycle -----------------------------------------------------------------------

    def check_ports(self, *, with_apps: bool) -> None:
        """Raises:
        StackError: a port this stack needs is taken.
        """
        s = self.settings
        t_host, t_port = s.temporal_address.rsplit(":", 1)
        k_host, k_port = s.kafka_bootstrap.rsplit(":", 1)
        wanted = [
            ("PostgreSQL", s.host, s.pg_port, "LEDGERFLOW_PG_PORT"),
            ("Temporal", t_host, int(t_port), "LEDGERFLOW_TEMPORAL_ADDRESS"),
            ("the Temporal Web UI", t_host, s.temporal_ui_port, "LEDGERFLOW_TEMPORAL_UI_PORT"),
            ("Kafka", k_host, int(k_port), "LEDGERFLOW_KAFKA_BOOTSTRAP"),
            ("the Kafka controller", k_host, s.kafka_controller_port, "LEDGERFLOW_KAFKA_CONTROLLER_PORT"),
        ]
        if with_apps:
            wanted.append(("the API", s.host, s.api_port, "LEDGERFLOW_API_PORT"))
        for name, host, port, var in wanted:
            ensure_port_free(name, host, port, var)

    def start(self, service: Service, step: str) -> None:
        t0 = time.monotonic()
        self.log(f"{step} {service.name}: starting")
        if service.prepare is not None:
            service.prepare()
        service.start()
        self.started.append(service)
        self._write_pids()
        service.wait_ready()
        self.log(f"{step} {service.name}: ready in {time.monotonic() - t0:.1f}s")

    def start_database(self, step: str = "[1/7]") -> None:
        self.start(self.postgres(), step)
        postgres.ensure_database(host=self.settings.host, port=self.settings.pg_port, dbname=DB_NAME)
        from ledger.migrate import upgrade

        upgrade(self.database_url)
        from api.seed import seed_dev

        seed_dev(self.database_url, self.settings)
        self.log(
            f"{step} postgresql: migrations applied, dev seed in place (admin@ledgerflow.local; "
            "TOTP: `ledgerflow totp` or .ledgerflow/secrets/dev-admin-totp)"
        )

    def up(self, *, with_apps: bool = True) -> None:
        """Start every part in order; on any failure stop what was started and re-raise.

        Raises:
            StackError: a part could not be prepared or did not become ready.
        """
        kafka.ensure_java()
        self.check_ports(with_apps=with_apps)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "launcher.pid").write_text(str(os.getpid()))
        try:
            kafka_service = self.kafka()  # resolves the jars first: the slow part of a cold start
            self.start_database("[1/6]")
            self.start(self.temporal(), "[2/6]")
            self.start(kafka_service, "[3/6]")
            self.write_env_file()
            if with_apps:
                for i, svc in enumerate(self.app_services(), start=4):
                    self.start(svc, f"[{i}/6]")
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop what this launcher started, newest first."""
        for service in reversed(self.started):
            if service.alive():
                self.log(f"stopping {service.name}")
            service.stop()
        self.started.clear()
        for name in ("pids.json", "launcher.pid"):
            (self.home / name).unlink(missing_ok=True)

    def write_env_file(self) -> Path:
        path = self.home / "stack.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.env().items()))
        return path

    def _write_pids(self) -> None:
        # Lets `ledgerflow down` clean up even if the launcher itself was killed.
        pids = {svc.name: svc.process.pid for svc in self.started if svc.process is not None}
        (self.home / "pids.json").write_text(json.dumps(pids))

    def urls(self) -> dict[str, str]:
        s = self.settings
        t_host = s.temporal_address.rsplit(":", 1)[0]
        return {
            "API and OpenAPI docs": f"http://{s.host}:{s.api_port}/docs",
            "Customer portal": f"http://{s.host}:{s.api_port}/portal/",
            "Operations portal": f"http://{s.host}:{s.api_port}/ops/",
            "Temporal Web UI": f"http://{t_host}:{s.temporal_ui_port}",
            "Temporal gRPC": s.temporal_address,
            "Kafka bootstrap": s.kafka_bootstrap,
            "PostgreSQL": self.database_url,
        }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _log_says(path: Path, marker: str) -> bool:
    try:
        return marker in path.read_text(errors="replace")
    except OSError:
        return False


def stop_leftovers(home: Path, log: Callable[[str], None] = say) -> int:
    """Stop a stack whose launcher is gone or running elsewhere; returns processes signalled."""
    import signal

    count = 0
    launcher = home / "launcher.pid"
    if launcher.exists():
        try:
            os.kill(int(launcher.read_text()), signal.SIGTERM)
            log("asked the running launcher to stop")
            count += 1
            for _ in range(600):
                if not launcher.exists():
                    return count
                time.sleep(0.1)
        except (ProcessLookupError, ValueError):
            pass
    pids_file = home / "pids.json"
    if pids_file.exists():
        pids: dict[str, int] = json.loads(pids_file.read_text())
        for name, pid in reversed(list(pids.items())):
            try:
                os.killpg(pid, signal.SIGTERM)
                log(f"stopped {name}")
                count += 1
            except ProcessLookupError:
                pass
        pids_file.unlink(missing_ok=True)
    launcher.unlink(missing_ok=True)
    return count


__all__ = ["Stack", "StackError", "stop_leftovers"]
