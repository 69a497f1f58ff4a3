"""Deployment configuration, read from `LEDGERFLOW_*` environment variables.

Every address of the embedded stack is overridable here; the launcher writes the values it
used to `.ledgerflow/stack.env`, which the processes it starts read back.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", extra="ignore")

    # Where the embedded stack keeps its data, logs and downloaded jars.
    home: Path = Path(".ledgerflow")
    host: str = "127.0.0.1"

    pg_port: int = 55432
    # Empty means: the embedded server's URL (built from host and pg_port).
    database_url: str = ""
    db_pool_size: int = 20

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "transfers"
    temporal_ui_port: int = 8233
    # Workflow task pollers of the worker, and the share of them on the shared (non-sticky)
    # queue, where every new transfer's first task waits. The SDK's default (5 pollers, 0.2)
    # leaves one poller for all new workflows: new transfers queue behind it under load.
    worker_workflow_pollers: int = 10
    worker_nonsticky_poll_ratio: float = 0.5

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093

    api_port: int = 8000

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
