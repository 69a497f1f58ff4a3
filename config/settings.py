"""Deployment configuration, read from `LEDGERFLOW_*` environment variables.

Every address of the embedded stack is overridable here; the launcher writes the values it
used to `.ledgerflow/stack.env`, which the processes it starts read back.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093

    api_port: int = 8000

    @property
    def sqlalchemy_url(self) -> str:
        """URL for SQLAlchemy with the psycopg 3 driver."""
        url = self.database_url or f"postgresql://postgres@{self.host}:{self.pg_port}/ledgerflow"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @property
    def temporal_port(self) -> int:
        return int(self.temporal_address.rsplit(":", 1)[1])

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
