"""Builds the embedded stack's services from settings and runs them in order.

Order matters: PostgreSQL (then migrations and the dev seed), Temporal, Kafka, and only then
the workers, the relays and the API processes, which need all three. Stopping goes the other
way, so nothing is left writing to a store that has already gone.

Several processes of each kind (`LEDGERFLOW_API_PROCESSES`, `_WORKER_PROCESSES`,
`_RELAY_PROCESSES`), named `api-1`, `worker-1`, ... with a log each. The API processes share
one listening socket that the launcher opens (api/serve.py says why not SO_REUSEPORT). Once
they are up a watcher thread restarts any of them that dies, and says so in the launcher's
output and in `logs/launcher.log`. PostgreSQL, Temporal and Kafka are not restarted: their
loss stops the run command, as before.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH, Settings
from stack import cluster, kafka, kafka_cluster, postgres, temporal, temporal_server, temporal_ui_server
from stack.service import Service, StackError, ensure_port_free

DB_NAME = "ledgerflow"
# The kinds of application process, in start order.
APP_KINDS = ("worker", "relay", "api")
# The line each kind writes to its log once it is ready.
READY_LINES = {"worker": "worker ready", "relay": "relay ready", "api": "Application startup complete"}
# Connections waiting for an API process to accept them (while one restarts, they wait here).
API_BACKLOG = 2048


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Stack:
    """One embedded stack: its settings, its services and the order they run in."""

    settings: Settings
    log: Callable[[str], None] = say
    started: list[Service] = field(default_factory=list)
    # The application processes the watcher keeps alive, and how often each was restarted.
    apps: list[Service] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    watch_interval_s: float = 0.5
    _api_socket: socket.socket | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

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

    def __post_init__(self) -> None:
        if self.is_cluster:
            # Every process gets all three brokers as its bootstrap list.
            self.settings = cluster.cluster_settings(self.settings)

    @property
    def is_cluster(self) -> bool:
        return self.settings.profile == "cluster"

    def temporal(self, *, headless: bool = False) -> Service:
        s = self.settings
        if self.is_cluster:
            # The Temporal server on PostgreSQL (stack/temporal_server.py); its Web UI is a
            # process of its own (temporal_ui()).
            build = temporal_server.ensure_server_build(progress=self.log)
            return temporal_server.temporal_server_service(
                build=build,
                home=self.home / "temporal-server",
                host=s.host,
                pg_port=s.pg_port,
                ports=cluster.temporal_ports(s),
                namespace=s.temporal_namespace,
                log_path=self.logs / "temporal.log",
            )
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

    def temporal_ui(self) -> Service | None:
        """The cluster profile's Web UI server (stack/temporal_ui_server.py), configured as the
        dev server's embedded one: same port, public path and codec. None on the dev profile,
        whose server serves its UI itself."""
        if not self.is_cluster:
            return None
        s = self.settings
        return temporal_ui_server.temporal_ui_service(
            binary=temporal_ui_server.ensure_ui_build(progress=self.log),
            host=s.host,
            port=s.temporal_ui_port,
            frontend=s.temporal_address,
            namespace=s.temporal_namespace,
            public_path=TEMPORAL_UI_PATH,
            codec_endpoint=TEMPORAL_UI_CODEC_PATH,
            log_path=self.logs / "temporal-ui.log",
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

    def kafka_services(self, libs_cache: Path | None = None) -> list[Service]:
        """The Kafka nodes of this profile: one, or the cluster's three (started together).
        `libs_cache`: where the jars are resolved (default: under home)."""
        if not self.is_cluster:
            return [self.kafka()]
        s = self.settings
        return kafka_cluster.broker_services(
            home=self.home / "kafka-cluster",
            libs=kafka.ensure_kafka_libs(libs_cache or self.home / "kafka-dist", progress=self.log),
            host=s.host,
            ports=cluster.kafka_ports(s),
            controller_ports=cluster.kafka_controller_ports(s),
            logs=self.logs,
        )

    def python_service(
        self, name: str, module_args: list[str], ready: Callable[[], bool], pass_fds: tuple[int, ...] = ()
    ) -> Service:
        return Service(
            name=name,
            argv=[sys.executable, *module_args],
            log_path=self.logs / f"{name}.log",
            ready=ready,
            env=self.env() | {"LEDGERFLOW_PROCESS_NAME": name},
            cwd=Path.cwd(),
            ready_timeout_s=60,
            pass_fds=pass_fds,
        )

    def app_services(self) -> list[Service]:
        """Every application process, in start order: workers, relays, API processes."""
        s = self.settings
        counts = {"worker": s.worker_processes, "relay": s.relay_processes, "api": s.api_processes}
        services = []
        for kind in APP_KINDS:
            for n in range(1, counts[kind] + 1):
                name = f"{kind}-{n}"
                # Readiness from the process's own log: the API processes share one port, so
                # an HTTP probe could not tell which of them answered.
                ready = _log_marker(self.logs / f"{name}.log", READY_LINES[kind])
                if kind == "api":
                    fd = self.api_socket().fileno()
                    services.append(self.python_service(name, ["-m", "api.serve", "--fd", str(fd)], ready, (fd,)))
                else:
                    services.append(self.python_service(name, ["-m", kind], ready))
        return services

    def api_socket(self) -> socket.socket:
        """The API's listening socket, opened once by the launcher and inherited by every API
        process.

        Raises:
            StackError: the port is taken.
        """
        if self._api_socket is None:
            s = self.settings
            sock = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((s.host, s.api_port))
            except OSError as err:
                sock.close()
                raise StackError(
                    f"port {s.api_port} for the API is not available on {s.host} ({err.strerror}): stop what "
                    "runs there or set LEDGERFLOW_API_PORT to another port"
                ) from None
            sock.listen(API_BACKLOG)
            self._api_socket = sock
        return self._api_socket

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
        if self.is_cluster:
            wanted = wanted[:3]
            for n, port in enumerate(cluster.temporal_ports(s).__dict__.values()):
                if n:
                    wanted.append(("the Temporal server", t_host, port, "LEDGERFLOW_TEMPORAL_INTERNAL_PORTS"))
            for port in cluster.kafka_ports(s):
                wanted.append(("Kafka", s.host, port, "LEDGERFLOW_KAFKA_BOOTSTRAP"))
            for port in cluster.kafka_controller_ports(s):
                wanted.append(("a Kafka controller", s.host, port, "LEDGERFLOW_KAFKA_CONTROLLER_PORTS"))
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

    def start_together(self, services: list[Service], step: str) -> None:
        """Start several services at once, then wait for each (Kafka's nodes: each waits for a
        quorum of controllers, so started one by one the first would never be ready)."""
        t0 = time.monotonic()
        # Prepared side by side too: each node's storage format is a JVM start of its own.
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            list(pool.map(lambda svc: svc.prepare() if svc.prepare is not None else None, services))
        for service in services:
            self.log(f"{step} {service.name}: starting")
            service.start()
            self.started.append(service)
        self._write_pids()
        for service in services:
            service.wait_ready()
        self.log(f"{step} {', '.join(svc.name for svc in services)}: ready in {time.monotonic() - t0:.1f}s")

    def start_apps(self, services: list[Service], step: str) -> None:
        """Start the application processes kind by kind (all of a kind at once, then wait for
        them), and keep them alive from then on (`watch`)."""
        for kind in APP_KINDS:
            group = [svc for svc in services if svc.name.rsplit("-", 1)[0] == kind]
            t0 = time.monotonic()
            for svc in group:
                self.log(f"{step} {svc.name}: starting")
                svc.start()
                self.started.append(svc)
                self.apps.append(svc)
            self._write_pids()
            for svc in group:
                svc.wait_ready()
            if group:
                names = ", ".join(svc.name for svc in group)
                self.log(f"{step} {kind}: ready in {time.monotonic() - t0:.1f}s ({names})")
        self.watch()

    def watch(self) -> None:
        """Start the watcher thread that restarts application processes that die."""
        if self._watcher is not None:
            return
        self._stopping.clear()
        self._watcher = threading.Thread(target=self._watch_loop, name="launcher-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=120)
            self._watcher = None

    def _watch_loop(self) -> None:
        # Each dead process is restarted on a thread of its own: processes killed together come
        # back together, instead of one waiting for another's start-up.
        restarting: dict[str, threading.Thread] = {}
        while not self._stopping.wait(self.watch_interval_s):
            for svc in list(self.apps):
                if self._stopping.is_set():
                    break
                busy = restarting.get(svc.name)
                if busy is not None and busy.is_alive():
                    continue
                if not svc.alive():
                    restarting[svc.name] = thread = threading.Thread(
                        target=self._restart, args=(svc,), name=f"restart-{svc.name}", daemon=True
                    )
                    thread.start()
        for thread in restarting.values():
            thread.join(timeout=90)

    def _restart(self, svc: Service) -> None:
        code = svc.process.returncode if svc.process is not None else None
        self.restarts[svc.name] += 1
        self.note(f"{svc.name} exited with code {code}; restarting it (restart {self.restarts[svc.name]})")
        t0 = time.monotonic()
        try:
            svc.start()
            self._write_pids()
            svc.wait_ready()
        except StackError as err:
            # Tried again on the next pass; a pause so a process that cannot start does not spin.
            self.note(f"{svc.name} did not come back: {err}")
            self._stopping.wait(2.0)
            return
        pid = svc.process.pid if svc.process is not None else None
        self.note(f"{svc.name} restarted as pid {pid} in {time.monotonic() - t0:.1f}s")

    def note(self, message: str) -> None:
        """A line for the launcher's output and for `logs/launcher.log` (which outlives it)."""
        self.log(message)
        try:  # one short append per line: lines from two restart threads do not interleave
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.logs / "launcher.log", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        except OSError:
            pass

    def kill_and_await_restart(self, svc: Service, timeout_s: float = 180.0) -> None:
        """kill -9 one application process and wait until the watcher has it ready again
        (fault injection).

        Raises:
            StackError: it was not back within the timeout.
        """
        old = svc.process.pid if svc.process is not None else None
        svc.kill()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = svc.process
            if proc is not None and proc.pid != old and proc.poll() is None and svc.ready():
                return
            time.sleep(0.2)
        raise StackError(f"{svc.name} was not restarted within {timeout_s:.0f}s")

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
            kafka_services = self.kafka_services()  # resolves the jars first: the slow part of a cold start
            temporal_service = self.temporal()  # the cluster profile builds its server first (once)
            ui_service = self.temporal_ui()  # and its Web UI server (once)
            self.start_database("[1/4]")
            self.start(temporal_service, "[2/4]")
            if ui_service is not None:
                self.start(ui_service, "[2/4]")
            self.start_together(kafka_services, "[3/4]")
            self.write_env_file()
            if with_apps:
                self.start_apps(self.app_services(), "[4/4]")
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop what this launcher started, newest first (the watcher first, so it restarts
        nothing on the way down)."""
        self.stop_watching()
        for service in reversed(self.started):
            if service.alive():
                self.log(f"stopping {service.name}")
            service.stop()
        self.started.clear()
        self.apps.clear()
        self.close_api_socket()
        for name in ("pids.json", "launcher.pid"):
            (self.home / name).unlink(missing_ok=True)

    def close_api_socket(self) -> None:
        if self._api_socket is not None:
            self._api_socket.close()
            self._api_socket = None

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
        return {
            "API and OpenAPI docs": f"http://{s.host}:{s.api_port}/docs",
            "Customer portal": f"http://{s.host}:{s.api_port}/portal/",
            "Operations portal": f"http://{s.host}:{s.api_port}/ops/",
            # Staff read transfers there, decoded, under the ops login (portal/temporal_ui.py).
            "Temporal Web UI": f"http://{s.host}:{s.api_port}{TEMPORAL_UI_PATH}/",
            "Temporal gRPC": s.temporal_address,
            "Kafka bootstrap": s.kafka_bootstrap,
            "PostgreSQL": self.database_url,
        }


def _log_marker(path: Path, marker: str) -> Callable[[], bool]:
    return lambda: _log_says(path, marker)


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
