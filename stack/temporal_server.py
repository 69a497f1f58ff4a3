"""The Temporal server itself (not the dev server), built from its Go module, on PostgreSQL.

The cluster profile (`ledgerflow up --profile cluster`) runs what a multi-node deployment runs:
`go.temporal.io/server`'s `cmd/server` with SQL persistence and SQL visibility in two databases
of the embedded PostgreSQL, several history shards, its schema set up and upgraded by the
module's own schema tool (`cmd/tools/sql`, i.e. `temporal-sql-tool`), and the namespace and
search attributes created through the operator API, as an operator would, instead of the dev
server's flags.

The binaries are built once per version with the Go toolchain the module asks for (GOTOOLCHAIN)
into `~/.cache/ledgerflow/temporal-server/<version>/`, beside a copy of the module's versioned
schema folders; a marker file written last says the folder is complete, so a second start (or a
second worktree, or the test session) reuses it instead of building again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from stack import postgres
from stack.service import Service, StackError, port_open
from stack.temporal import SEARCH_ATTRIBUTES, temporal_binary

MODULE = "go.temporal.io/server"
# The server the cluster profile runs, and the Go toolchain its go.mod requires (`go 1.27`):
# GOTOOLCHAIN makes the machine's go fetch exactly that one from the module proxy.
VERSION = "v1.32.2"
GO_TOOLCHAIN = "go1.27.3"
# Four history shards: more than one, so workflows are spread over shards (and their owners)
# as in production, few enough that a 2-core machine does not spend itself on shard loops.
# Fixed for the life of a cluster: the number is written into the database at first start.
NUM_HISTORY_SHARDS = 4
# The two databases of the Temporal server in the embedded PostgreSQL, its own.
DB_MAIN = "temporal"
DB_VISIBILITY = "temporal_visibility"
SQL_PLUGIN = "postgres12"
# The schema folders inside the module, as `temporal-sql-tool update-schema -d` wants them.
SCHEMA_DIRS = {
    DB_MAIN: "schema/postgresql/v12/temporal/versioned",
    DB_VISIBILITY: "schema/postgresql/v12/visibility/versioned",
}
# How long a closed workflow's history is kept (the dev server's default namespace keeps 24 h;
# three days leave room to look at yesterday's transfers in the Web UI).
NAMESPACE_RETENTION = "72h"
_MARKER = ".complete"

# As on the dev server (stack/temporal.py), plus a search attribute cache that is read afresh:
# attributes created through the operator API are usable by the very next start-workflow call
# (the dev server does the same), where the default 60 s cache would reject them.
DYNAMIC_CONFIG: dict[str, object] = {
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
    "system.forceSearchAttributesCacheRefreshOnRead": True,
}

# The services one server process runs (all of them: one process, several shards).
ROLES = ("frontend", "history", "matching", "worker")


def cache_root() -> Path:
    """Where built binaries live: shared by every checkout on this machine (a build is ~5 min)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ledgerflow" / "temporal-server"


@dataclass(frozen=True)
class ServerBuild:
    """A complete build: both binaries and the schema folders of one server version."""

    root: Path

    @property
    def server(self) -> Path:
        return self.root / "bin" / "server"

    @property
    def sql_tool(self) -> Path:
        return self.root / "bin" / "sql"

    def schema_dir(self, db: str) -> Path:
        return self.root / "schema" / db


def ensure_server_build(
    root: Path | None = None, *, version: str = VERSION, progress: Callable[[str], None] | None = None
) -> ServerBuild:
    """Build `cmd/server` and `cmd/tools/sql` of `version` once, into root/version.

    Raises:
        StackError: go is missing or the build failed (the log says why).
    """
    folder = (root or cache_root()) / version
    build = ServerBuild(folder)
    if (folder / _MARKER).is_file() and build.server.is_file() and build.sql_tool.is_file():
        return build
    go = shutil.which("go")
    if go is None:
        raise StackError("go not found: the cluster profile builds the Temporal server from its Go module")
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "build.log"
    if progress is not None:
        progress(f"building the Temporal server {version} with {GO_TOOLCHAIN} (once; ~5 min on 2 cores)")
    env = {**go_env(), "GOBIN": str(folder / "bin"), "GOFLAGS": "-mod=mod"}
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        result = subprocess.run(
            [go, "install", f"{MODULE}/cmd/server@{version}", f"{MODULE}/cmd/tools/sql@{version}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=folder,
            check=False,
        )
    if result.returncode != 0 or not (build.server.is_file() and build.sql_tool.is_file()):
        raise StackError(f"building the Temporal server failed (exit {result.returncode}); see {log_path}")
    # The versioned schema folders ship in the module; copy them beside the binaries, so the
    # build folder is whole even after `go clean -modcache`.
    modcache = subprocess.run(
        [go, "env", "GOMODCACHE"], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    module_dir = Path(modcache) / f"{MODULE}@{version}"
    for db, rel in SCHEMA_DIRS.items():
        target = build.schema_dir(db)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(module_dir / rel, target)
        _make_writable(target)
    (folder / _MARKER).write_text(f"{version} {GO_TOOLCHAIN} built in {time.monotonic() - t0:.0f}s\n")
    return build


def go_env() -> dict[str, str]:
    """The environment of a Go build here: the toolchain the modules ask for (the machine's own go
    is older; GOTOOLCHAIN makes it fetch exactly that one from the module proxy, once)."""
    return {**os.environ, "GOTOOLCHAIN": GO_TOOLCHAIN}


def _make_writable(path: Path) -> None:
    # The module cache is read-only; its copies need not be (so they can be replaced).
    for dirpath, _dirs, files in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)


@dataclass(frozen=True)
class ServerPorts:
    """The ports of one server process: gRPC and membership for each role, HTTP for the frontend."""

    frontend: int
    frontend_http: int
    frontend_membership: int
    history: int
    history_membership: int
    matching: int
    matching_membership: int
    worker: int
    worker_membership: int

    @classmethod
    def from_list(cls, frontend: int, internal: list[int]) -> ServerPorts:
        """Raises:
        StackError: not exactly eight internal ports.
        """
        if len(internal) != 8:
            raise StackError(f"the Temporal server needs 8 internal ports, got {len(internal)}")
        return cls(frontend, *internal)


def server_config(*, host: str, pg_port: int, ports: ServerPorts, dynamic_config: Path, shards: int) -> str:
    """The server's YAML config (one process running every role)."""

    def store(db: str, conns: int) -> str:
        return (
            f"      sql:\n"
            f'        pluginName: "{SQL_PLUGIN}"\n'
            f'        databaseName: "{db}"\n'
            f'        connectAddr: "{host}:{pg_port}"\n'
            f'        connectProtocol: "tcp"\n'
            f'        user: "{postgres.SUPERUSER}"\n'
            f'        password: ""\n'
            f"        maxConns: {conns}\n"
            f"        maxIdleConns: {conns}\n"
            f'        maxConnLifetime: "1h"\n'
        )

    roles = {
        "frontend": (ports.frontend, ports.frontend_membership),
        "history": (ports.history, ports.history_membership),
        "matching": (ports.matching, ports.matching_membership),
        "worker": (ports.worker, ports.worker_membership),
    }
    services = ""
    for role, (grpc, membership) in roles.items():
        services += (
            f"  {role}:\n    rpc:\n      grpcPort: {grpc}\n      membershipPort: {membership}\n"
            f'      bindOnIP: "{host}"\n'
        )
        if role == "frontend":
            services += f"      httpPort: {ports.frontend_http}\n"
    return (
        "# Written by stack/temporal_server.py; rewritten on every start.\n"
        "log:\n  stdout: true\n  level: warn\n\n"
        "persistence:\n"
        "  defaultStore: postgres-default\n"
        "  visibilityStore: postgres-visibility\n"
        f"  numHistoryShards: {shards}\n"
        "  datastores:\n"
        "    postgres-default:\n"
        f"{store(DB_MAIN, 20)}"
        "    postgres-visibility:\n"
        f"{store(DB_VISIBILITY, 4)}\n"
        "global:\n"
        "  membership:\n"
        "    maxJoinDuration: 30s\n"
        f'    broadcastAddress: "{host}"\n\n'
        f"services:\n{services}\n"
        "clusterMetadata:\n"
        "  enableGlobalNamespace: false\n"
        "  failoverVersionIncrement: 10\n"
        '  masterClusterName: "active"\n'
        '  currentClusterName: "active"\n'
        "  clusterInformation:\n"
        "    active:\n"
        "      enabled: true\n"
        "      initialFailoverVersion: 1\n"
        '      rpcName: "frontend"\n'
        f'      rpcAddress: "{host}:{ports.frontend}"\n\n'
        "dcRedirectionPolicy:\n"
        '  policy: "noop"\n\n'
        "dynamicConfigClient:\n"
        f'  filepath: "{dynamic_config}"\n'
        '  pollInterval: "10s"\n'
    )


def dynamic_config_yaml() -> str:
    lines = ["# Written by stack/temporal_server.py; rewritten on every start."]
    for key, value in DYNAMIC_CONFIG.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"{key}:\n  - value: {rendered}")
    return "\n".join(lines) + "\n"


def setup_schema(build: ServerBuild, *, host: str, pg_port: int, log_path: Path) -> None:
    """Create both databases if missing, set up versioning and update to the newest schema.

    Idempotent: the tool records the version it reached, so a second run updates nothing.

    Raises:
        StackError: the schema tool failed (its output is in log_path).
    """
    base = [
        str(build.sql_tool),
        "--plugin",
        SQL_PLUGIN,
        "--endpoint",
        host,
        "--port",
        str(pg_port),
        "--user",
        postgres.SUPERUSER,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        for db in SCHEMA_DIRS:
            postgres.ensure_database(host=host, port=pg_port, dbname=db)
            steps = [["--database", db, "update-schema", "--schema-dir", str(build.schema_dir(db))]]
            if not _has_versioning(host, pg_port, db):
                # Version 0.0 sets up only the tool's own version table; every real version is
                # then applied by update-schema from the versioned folders, as on an upgrade.
                steps.insert(0, ["--database", db, "setup-schema", "--version", "0.0"])
            for step in steps:
                result = subprocess.run(
                    [*base, *step], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
                )
                if result.returncode != 0:
                    raise StackError(f"temporal-sql-tool {' '.join(step)} failed; see {log_path}")


def _has_versioning(host: str, port: int, db: str) -> bool:
    with psycopg.connect(host=host, port=port, user=postgres.SUPERUSER, dbname=db) as conn:
        row = conn.execute("SELECT to_regclass('public.schema_version') IS NOT NULL").fetchone()
    return bool(row and row[0])


def schema_version(host: str, port: int, db: str) -> str | None:
    """The version the schema tool recorded for db (None before setup)."""
    if not _has_versioning(host, port, db):
        return None
    with psycopg.connect(host=host, port=port, user=postgres.SUPERUSER, dbname=db) as conn:
        row = conn.execute("SELECT curr_version FROM schema_version LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def register_namespace(address: str, namespace: str, *, log_path: Path) -> None:
    """Create the namespace and the search attributes through the operator API (idempotent).

    Raises:
        StackError: the operator API refused (see log_path).
    """
    cli = temporal_binary()
    with open(log_path, "ab") as log:

        def run(argv: list[str], ok_if: str) -> None:
            result = subprocess.run([cli, *argv, "--address", address], capture_output=True, check=False)
            log.write(result.stdout + result.stderr)
            text = (result.stdout + result.stderr).decode(errors="replace").lower()
            if result.returncode != 0 and ok_if not in text:
                raise StackError(f"temporal {' '.join(argv[:3])} failed: {text.strip()[-300:]}; see {log_path}")

        run(
            ["operator", "namespace", "create", "--namespace", namespace, "--retention", NAMESPACE_RETENTION],
            ok_if="already",
        )
        for name, kind in SEARCH_ATTRIBUTES.items():
            run(
                ["operator", "search-attribute", "create", "--namespace", namespace, "--name", name, "--type", kind],
                ok_if="already",
            )


def temporal_server_service(
    *,
    build: ServerBuild,
    home: Path,
    host: str,
    pg_port: int,
    ports: ServerPorts,
    namespace: str,
    log_path: Path,
    shards: int = NUM_HISTORY_SHARDS,
) -> Service:
    """A Service running the Temporal server; prepare() writes its config and sets up the schema,
    readiness waits for the frontend and then registers the namespace (once per data)."""
    config = home / "config.yaml"
    dynamic = home / "dynamicconfig.yaml"
    address = f"{host}:{ports.frontend}"
    registered = {"done": False}

    def prepare() -> None:
        home.mkdir(parents=True, exist_ok=True)
        dynamic.write_text(dynamic_config_yaml())
        config.write_text(server_config(host=host, pg_port=pg_port, ports=ports, dynamic_config=dynamic, shards=shards))
        setup_schema(build, host=host, pg_port=pg_port, log_path=home / "schema.log")

    def ready() -> bool:
        if not port_open(host, ports.frontend):
            return False
        if not registered["done"]:
            try:
                register_namespace(address, namespace, log_path=home / "operator.log")
            except StackError:
                return False  # the frontend answers before its history shards are owned
            registered["done"] = True
        probe = subprocess.run(
            [temporal_binary(), "operator", "namespace", "describe", "--namespace", namespace, "--address", address],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return probe.returncode == 0

    return Service(
        name="temporal",
        argv=[str(build.server), "--config-file", str(config), "--allow-no-auth", "start"],
        log_path=log_path,
        ready=ready,
        prepare=prepare,
        cwd=home,
        ready_timeout_s=180,
        stop_timeout_s=30,
    )


def report_build(what: str, ensure: Callable[[Callable[[str], None]], Path]) -> int:
    """The command-line form of a Go build step: build (or find) it, say where it is and how long
    that took; 1 with the reason if it cannot be built."""
    t0 = time.monotonic()
    try:
        binary = ensure(lambda message: print(message, flush=True))
    except StackError as err:
        print(f"ledgerflow: {err}")
        return 1
    print(f"{what}: {binary} ({time.monotonic() - t0:.0f}s)")
    return 0


def main() -> int:
    """`python -m stack.temporal_server`: build (or find) the binaries and say where they are."""
    return report_build(f"Temporal server {VERSION}", lambda progress: ensure_server_build(progress=progress).server)


if __name__ == "__main__":
    raise SystemExit(main())
