"""Health activity: a database round trip made from inside a worker."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio import activity

from contracts.health import DbPingInput, DbPingResult


class HealthActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="db_ping")
    def db_ping(self, request: DbPingInput) -> DbPingResult:
        with self._engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        return DbPingResult(probe_id=request.probe_id, server_version=str(version))
