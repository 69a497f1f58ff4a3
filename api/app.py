"""The FastAPI application: service endpoints, the customer realm /v1 and the staff realm /ops/v1."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

import portal
from api import idempotency, openapi, problems, readiness
from api.bodylimit import BodySizeLimit
from api.contract import declare
from api.metrics import LATENCY, REQUESTS
from api.routes import CUSTOMER_ROUTERS, OPS_ROUTERS, ops_codec, ops_reconciliation
from api.runtime import Runtime
from config.settings import TEMPORAL_UI_CODEC_PATH

log = logging.getLogger("ledgerflow.api")

# Which API process answered (the launcher names each: api-1, api-2, ...): several processes
# share one port, and an operator or a test reading a response can tell them apart.
PROCESS_NAME = os.environ.get("LEDGERFLOW_PROCESS_NAME") or f"api-pid-{os.getpid()}"
PROCESS_HEADER = "X-Ledgerflow-Process"

CUSTOMER_PREFIX = "/v1"
OPS_PREFIX = "/ops/v1"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = Runtime()
    app.state.runtime = runtime
    await runtime.temporal_client()
    try:
        # Housekeeping that must not stop the API from starting (the database may be down).
        await run_in_threadpool(idempotency.purge_expired, runtime.engine)
    except Exception as err:
        log.warning("idempotency purge skipped: %s", type(err).__name__)
    yield
    runtime.close()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Ledgerflow",
        version="0.1.0",
        description="Money transfers on a double-entry ledger. Customer realm /v1, staff realm /ops/v1.",
        lifespan=lifespan,
    )
    problems.install(app)

    # Before anything reads a body (only `measure` is outside it, so refusals are counted too).
    # 64 KiB everywhere except the two routes that take documents: Temporal payloads for the
    # Web UI's codec, and bank statements (CSV) for reconciliation.
    app.add_middleware(
        BodySizeLimit,
        prefixes={
            OPS_PREFIX + ops_codec.PREFIX: ops_codec.MAX_BODY_BYTES,
            TEMPORAL_UI_CODEC_PATH: ops_codec.MAX_BODY_BYTES,
            OPS_PREFIX + ops_reconciliation.STATEMENTS_PATH: ops_reconciliation.MAX_STATEMENT_BYTES,
        },
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as err:
            # Anything that escaped the handlers: a problem document, never a trace or SQL.
            response = problems.unexpected_error_response(request, err)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(request.method, path).observe(time.perf_counter() - t0)
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        response.headers[PROCESS_HEADER] = PROCESS_NAME
        return response

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str | int]:
        return {"status": "ok", "process": PROCESS_NAME, "pid": os.getpid()}

    @app.get("/readyz", tags=["service"])
    @declare("not_ready")
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

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    for router in CUSTOMER_ROUTERS:
        app.include_router(router, prefix=CUSTOMER_PREFIX)
    for router in OPS_ROUTERS:
        app.include_router(router, prefix=OPS_PREFIX)
    # The two HTML portals (/portal/ and /ops/), on top of the same API.
    portal.install(app)

    app.openapi = openapi.builder(app)  # type: ignore[method-assign]
    return app


app = create_app()
