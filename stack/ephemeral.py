"""A throwaway embedded stack on free ports under a temporary directory.

Used by the test session and the benchmarks: it never touches a developer's running stack,
and each part starts only when first asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.settings import Settings
from stack import postgres
from stack.launcher import Stack
from stack.service import Service, StackError, free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    bin_dir: Path

    def url(self, dbname: str) -> str:
        return postgres.database_url(host=self.host, port=self.port, dbname=dbname)


class EphemeralStack:
    """Lazily started parts of one embedded stack, stopped at session end."""

    def __init__(
        self, home: Path, *, processes: dict[str, int] | None = None, profile: Literal["dev", "cluster"] | None = None
    ) -> None:
        """`processes`: how many of each application process `full()` starts, e.g.
        {"api": 2, "worker": 2, "relay": 2} (the settings' defaults otherwise). `profile`: the
        topology (LEDGERFLOW_PROFILE otherwise, "dev" by default)."""
        ports = [free_port() for _ in range(6)]
        counts = processes or {}
        self.settings = Settings(
            home=home,
            host="127.0.0.1",
            pg_port=ports[0],
            temporal_address=f"127.0.0.1:{ports[1]}",
            temporal_ui_port=ports[2],
            kafka_bootstrap=f"127.0.0.1:{ports[3]}",
            kafka_controller_port=ports[4],
            api_port=ports[5],
        )
        self.settings = self.settings.model_copy(update={f"{kind}_processes": n for kind, n in counts.items()})
        if profile is not None:
            self.settings = self.settings.model_copy(update={"profile": profile})
        if self.settings.profile == "cluster":
            # LEDGERFLOW_PROFILE=cluster (`make test-cluster`): the Temporal server and three
            # Kafka brokers, each on ports of its own.
            self.settings = self.settings.model_copy(update=_cluster_ports())
        # Quiet, but the watcher's restarts still reach logs/launcher.log (Stack.note).
        self.stack = Stack(self.settings, log=lambda message: None)
        self.services: dict[str, Service] = {}

    def _start(self, name: str, build: Callable[[], Service], ports: Callable[[], dict[str, object]]) -> Service:
        """Start a part; if it fails (another process may have taken a "free" port between
        our probe and its bind), retry once on fresh ports."""
        if name in self.services:
            return self.services[name]
        for attempt in range(2):
            service = build()
            try:
                self.stack.start(service, "[test]")
            except StackError:
                service.stop()
                if attempt == 1:
                    raise
                self.settings = self.settings.model_copy(update=ports())
                self.stack.settings = self.settings
                continue
            self.services[name] = service
            break
        return self.services[name]

    def postgres(self) -> PgServer:
        self._start("postgres", self.stack.postgres, lambda: {"pg_port": free_port()})
        return PgServer(self.settings.host, self.settings.pg_port, postgres.pg_bin_dir())

    def temporal(self) -> str:
        if self.settings.profile == "cluster":
            # The server's schema needs PostgreSQL first (its own two databases there).
            self.postgres()
        self._start(
            "temporal",
            # With its Web UI: the staff tests drive it through the ops portal. It costs the
            # test session one more listening port, not a process.
            lambda: self.stack.temporal(headless=False),
            lambda: {
                "temporal_address": f"127.0.0.1:{free_port()}",
                "temporal_ui_port": free_port(),
                "temporal_internal_ports": _temporal_ports(),
            },
        )
        if self.settings.profile == "cluster":
            # The server has no UI of its own: the UI server beside it, as the launcher runs it.
            self._start(
                "temporal-ui",
                lambda: _required(self.stack.temporal_ui()),
                lambda: {"temporal_ui_port": free_port()},
            )
        return self.settings.temporal_address

    def kafka(self) -> str:
        from stack import kafka

        if self.settings.profile == "cluster":
            return self._kafka_cluster()

        def build() -> Service:
            # Jars are a cache, not data: share the repo's download instead of resolving again.
            libs = kafka.ensure_kafka_libs(REPO / ".ledgerflow" / "kafka-dist")
            return kafka.kafka_service(
                home=self.settings.home / "kafka",
                libs=libs,
                host=self.settings.host,
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                log_path=self.settings.home / "logs" / "kafka.log",
            )

        self._start(
            "kafka",
            build,
            lambda: {"kafka_bootstrap": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port()},
        )
        return self.settings.kafka_bootstrap

    def _kafka_cluster(self) -> str:
        """The three brokers, started together (each waits for a quorum of controllers)."""
        if "kafka-1" in self.services:
            return self.settings.kafka_bootstrap
        services = self.stack.kafka_services(REPO / ".ledgerflow" / "kafka-dist")
        try:
            self.stack.start_together(services, "[test]")
        except StackError:
            for service in services:
                service.stop()
            raise
        for service in services:
            self.services[service.name] = service
        return self.settings.kafka_bootstrap

    def restart(self, name: str) -> None:
        """Stop and start one part on the same data (for fault-injection tests)."""
        service = self.services[name]
        service.stop()
        service.start()
        service.wait_ready()

    def close(self) -> None:
        self.stack.stop_watching()
        for service in reversed(list(self.services.values())):
            service.stop()
        self.stack.close_api_socket()

    def stop_apps(self) -> None:
        """Stop the application processes `full()` started (the stores keep running)."""
        self.stack.stop_watching()
        for service in reversed(self.stack.apps):
            service.stop()
            self.services.pop(service.name, None)
            if service in self.stack.started:
                self.stack.started.remove(service)
        self.stack.apps.clear()
        self.stack.close_api_socket()

    def apps(self, kind: str) -> list[Service]:
        """The running application processes of one kind ("api", "worker", "relay")."""
        return [svc for svc in self.stack.apps if svc.name.rsplit("-", 1)[0] == kind]

    def full(self, extra_env: dict[str, str] | None = None) -> str:
        """The whole system: infrastructure, the migrated and seeded `ledgerflow` database,
        then the workers, relays and API processes (as `ledgerflow up` runs them, watched and
        restarted when one dies). Returns the API's base URL."""
        from api.seed import seed_dev
        from ledger.migrate import upgrade
        from stack.launcher import DB_NAME

        pg = self.postgres()
        postgres.ensure_database(host=pg.host, port=pg.port, dbname=DB_NAME)
        upgrade(self.stack.database_url)
        seed_dev(self.stack.database_url, self.settings)
        self.temporal()
        self.kafka()
        self.stack.write_env_file()
        services = self.stack.app_services()
        for service in services:
            service.env.update(extra_env or {})
            self.services[service.name] = service
        self.stack.start_apps(services, "[stack]")
        return f"http://{self.settings.host}:{self.settings.api_port}"

    @property
    def database_url(self) -> str:
        return self.stack.database_url


def _required(service: Service | None) -> Service:
    if service is None:
        raise StackError("this part is not in the stack's profile")
    return service


def _cluster_ports() -> dict[str, object]:
    """Free ports for the cluster profile's extra listeners (Temporal's roles, 3 Kafka nodes)."""
    brokers = [free_port() for _ in range(3)]
    return {
        "temporal_internal_ports": _temporal_ports(),
        "kafka_bootstrap": ",".join(f"127.0.0.1:{port}" for port in brokers),
        "kafka_controller_ports": ",".join(str(free_port()) for _ in range(3)),
    }


def _temporal_ports() -> str:
    """Eight free ports below 32768: the server's schema stores membership ports as smallint
    (cluster_membership.rpc_port), and the OS hands out ephemeral ports above it."""
    import random
    import socket

    chosen: list[int] = []
    while len(chosen) < 8:
        port = random.randint(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in chosen:
            chosen.append(port)
    return ",".join(map(str, chosen))
