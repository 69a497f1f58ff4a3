"""The FastAPI application: service endpoints, the customer realm /v1 and the staff realm /ops/v1."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

import portal
from api import idempotency, openapi, problems, readiness
from api.bodylimit import BodySizeLimit
from api.contract import declare
from api.request_metrics import PROCESS_NAME, RequestMetrics
from api.routes import CUSTOMER_ROUTERS, OPS_ROUTERS, ops_codec, ops_reconciliation
from api.runtime import Runtime
from config.settings import TEMPORAL_UI_CODEC_PATH

log = logging.getLogger("ledgerflow.api")

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

    # Before anything reads a body (only RequestMetrics is outside it).
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

    # Outermost: refusals by BodySizeLimit are counted too.
    app.add_middleware(RequestMetrics)

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
