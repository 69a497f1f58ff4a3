"""The FastAPI application: service endpoints now; the /v1 and /ops/v1 realms mount here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import create_engine
from temporalio.client import Client

from api import problems, readiness
from config.settings import get_settings

log = logging.getLogger("ledgerflow.api")

REQUESTS = Counter("ledgerflow_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("ledgerflow_http_request_seconds", "HTTP request latency", ["method", "route"])


class Runtime:
    """Process-wide handles, built once at start-up."""

    def __init__(self) -> None:
        settings = get_settings()
        self.settings = settings
        self.engine = create_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size, pool_pre_ping=True)
        self.kafka_admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        self.temporal: Client | None = None

    async def temporal_client(self) -> Client | None:
        # Connect lazily and retry on each call: the API must start (and say "not ready")
        # even while Temporal is down.
        if self.temporal is None:
            try:
                self.temporal = await asyncio.wait_for(
                    Client.connect(self.settings.temporal_address, namespace=self.settings.temporal_namespace),
                    timeout=3,
                )
            except Exception as err:
                log.warning("temporal not reachable yet: %s", type(err).__name__)
        return self.temporal


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = Runtime()
    app.state.runtime = runtime
    await runtime.temporal_client()
    yield
    runtime.engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(title="Ledgerflow", version="0.1.0", lifespan=lifespan)
    problems.install(app)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(request.method, path).observe(time.perf_counter() - t0)
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        parts = await asyncio.gather(
            readiness.check_postgres(runtime.engine),
            readiness.check_temporal(await runtime.temporal_client()),
            readiness.check_kafka(runtime.kafka_admin),
        )
        body = {
            "status": "ready" if all(p.ok for p in parts) else "not_ready",
            "parts": {p.name: {"ok": p.ok, "detail": p.detail} for p in parts},
        }
        down = [p.name for p in parts if not p.ok]
        if down:
            return problems.problem_response(
                503, "not_ready", "Not ready", f"unreachable: {', '.join(down)}", parts=body["parts"]
            )
        return JSONResponse(body)

    @app.get("/metrics", tags=["service"])
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
