"""Deployment configuration, read from `LEDGERFLOW_*` environment variables.

Every address of the embedded stack is overridable here; the launcher writes the values it
used to `.ledgerflow/stack.env`, which the processes it starts read back.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where staff reach the Temporal Web UI: through the ops portal, under its login, so the UI's
# calls to the payload codec are same-origin and carry the staff session (portal/temporal_ui.py).
# The UI server is started with this public path so its links and assets resolve under it.
TEMPORAL_UI_PATH: Final = "/ops/temporal"
TEMPORAL_UI_CODEC_PATH: Final = "/ops/temporal-codec"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", extra="ignore")

    # Where the embedded stack keeps its data, logs and downloaded jars.
    home: Path = Path(".ledgerflow")
    host: str = "127.0.0.1"

    pg_port: int = 55432
    # Empty means: the embedded server's URL (built from host and pg_port).
    database_url: str = ""
    db_pool_size: int = 20
    # The API and the relay check a pooled connection before use (a PostgreSQL restart leaves
    # it dead), but only one that sat idle this long: a busy process's hot connections come
    # back within milliseconds and skip the round trip. Measured 2026-12-03 on GET
    # /v1/transfers/{id} (bench-style probe, one API process): API CPU 3.9 -> 3.0 ms per
    # request, PostgreSQL 2.1 -> 1.7 ms, against a ping at every checkout (0). The price: a
    # restart under load fails the requests that draw a dead hot connection, with a retryable
    # 503 (the connection is then replaced); an idle process still finds every dead one.
    db_ping_after_idle_s: float = 1.0

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "transfers"
    temporal_ui_port: int = 8233
    # Where the ops portal reaches the Web UI server; empty: http://<host>:<temporal_ui_port>.
    # (docker-compose: the UI container, http://temporal-ui:8080.)
    temporal_ui_upstream: str = ""
    # Workflow task pollers of the worker, and the share of them on the shared (non-sticky)
    # queue, where every new transfer's first task waits. The SDK's default (5 pollers, 0.2)
    # leaves one poller for all new workflows: new transfers queue behind it under load.
    worker_workflow_pollers: int = 10
    worker_nonsticky_poll_ratio: float = 0.5

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093

    # Which topology `ledgerflow up` starts. "dev": the embedded one (Temporal dev server, one
    # Kafka node), fast to start, what `make run` / `make test` use. "cluster": the Temporal
    # server built from its Go module on PostgreSQL (4 history shards) and three Kafka brokers
    # (RF 3, min.insync.replicas 2): what a multi-node deployment runs (stack/cluster.py).
    profile: Literal["dev", "cluster"] = "dev"
    # Cluster profile only. The Temporal server's 8 internal ports (HTTP and membership of the
    # frontend, gRPC and membership of history, matching and worker), comma-separated; empty:
    # the 8 ports after the frontend's (temporal_address), as the server's own sample config.
    temporal_internal_ports: str = ""
    # Cluster profile only. The three brokers' controller ports, comma-separated; empty:
    # kafka_controller_port, +2, +4 (the brokers, when kafka_bootstrap names one: its port,
    # +2, +4), so the default ports of the three nodes interleave without clashing.
    kafka_controller_ports: str = ""

    api_port: int = 8000

    # How many processes of each kind the launcher runs (each >= 1). Two API processes by
    # default: one can die (or be restarted) while the other keeps answering on the same port,
    # and both share every piece of state through PostgreSQL. One worker and one relay: the
    # Temporal dev server, not the worker, bounds transfers on a small machine, and only one
    # relay publishes at a time anyway (the others stand by on its advisory lock).
    api_processes: int = Field(default=2, ge=1)
    worker_processes: int = Field(default=1, ge=1)
    relay_processes: int = Field(default=1, ge=1)

    # Transfers. Review thresholds are per currency, in minor units (at or over: ops review).
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    fx_quote_ttl_s: int = 60
    review_threshold_minor: dict[str, int] = {
        "USD": 1_000_000,
        "EUR": 1_000_000,
        "GBP": 1_000_000,
        "CHF": 1_000_000,
        "JPY": 150_000_000,
        "BHD": 3_800_000,
    }
    # Fraud review (risk rules on the event stream). On by default: no transfer posts without
    # an allow verdict or a human review. Off only to compare benchmarks, or where no risk
    # consumer runs (the test suites that start no Kafka turn it off in tests/conftest.py).
    risk_enabled: bool = True
    # How long a transfer whose code was taken waits for its verdict before it goes to review
    # as `risk_unavailable` (fail closed). 5 s: the verdict normally arrives well under a
    # second after initiation (often before the code), so only an outage waits this long.
    risk_wait_s: int = 5
    # Standing orders run at this hour (UTC) on their dates: 06:00 UTC is before the business
    # day in Europe, after the night's reconciliation (02:00), so a run sees reconciled books.
    standing_order_run_hour_utc: int = 6
    # How late a missed run (Temporal down at its time) is still made: a day, so an outage
    # delays a payment rather than skips it, and never replays a whole backlog.
    standing_order_catchup_s: int = 86_400
    # Hex HMAC key for OTP hashes. Empty: a key is generated once under `home` and kept there;
    # production sets it from a secret store, never from the repository.
    otp_key: SecretStr = SecretStr("")
    # Temporal payload encryption keys, "kid:hex64,kid:hex64" (first = active). Empty: a key
    # file generated once under `home/secrets/` (see security.keys).
    payload_keys: SecretStr = SecretStr("")
    # Keys that seal secrets stored in our own tables and topics (OTP codes on their way to the
    # inbox, TOTP secrets), same "kid:hex64,..." form. Empty: `home/secrets/seal.keys`.
    seal_keys: SecretStr = SecretStr("")
    # Customers' second factor (TOTP): "optional" (each customer may turn it on) or "required"
    # (a customer without it may only enrol). Optional by default: the transfer OTP already
    # gives every payment strong customer authentication, and a bank turns this on by policy.
    # Staff always need it (they move other people's money), so there is no setting for them.
    customer_mfa: Literal["optional", "required"] = "optional"

    # Retention (recon/retention.py). Published outbox rows and their publication records are
    # kept a week: the topics of ledgerflow.transfers and .accounts keep their events 7 days,
    # and an operator looking into a transfer of last week still sees its events.
    outbox_retention_days: int = 7
    # Idempotency keys: the contract promises at least 24 h; twice that covers a client
    # retrying across a day boundary or a long weekend's batch job, and stays small.
    idempotency_retention_h: int = 48
    # Rows per batch: each batch is one short transaction (about 10-50 ms for 1,000 rows),
    # so it never holds a lock that a posting would notice.
    retention_batch_rows: int = 1_000
    # How often the Temporal Schedule `retention-sweep` runs: hourly keeps each sweep small.
    retention_sweep_every_s: int = 3_600

    @property
    def sqlalchemy_url(self) -> str:
        """URL for SQLAlchemy with the psycopg 3 driver."""
        url = self.database_url or f"postgresql://postgres@{self.host}:{self.pg_port}/ledgerflow"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    def otp_key_bytes(self) -> bytes:
        if self.otp_key.get_secret_value():
            return bytes.fromhex(self.otp_key.get_secret_value())
        return _key_file(self.home.resolve() / "secrets" / "otp.key")

    @property
    def temporal_port(self) -> int:
        return int(self.temporal_address.rsplit(":", 1)[1])

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1])


def _key_file(path: Path) -> bytes:
    """Read a 32-byte key from `path`, creating it (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written to a temporary name and linked into place, so a concurrent reader sees
        # either no file or the whole key, and only one process's key ever wins.
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        # Created 0600 from the start: never readable by others, not even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
