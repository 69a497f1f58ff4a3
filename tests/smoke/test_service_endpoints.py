"""/healthz, /readyz and /metrics answer, and /readyz names the part that is down."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config.settings import get_settings
from stack.ephemeral import PgServer
from tests.conftest import TestStack


@pytest.fixture
def client(
    monkeypatch: pytest.MonkeyPatch, pg_server: PgServer, temporal_address: str, kafka_bootstrap: str, db_url: str
) -> Iterator[TestClient]:
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", db_url)
    monkeypatch.setenv("LEDGERFLOW_TEMPORAL_ADDRESS", temporal_address)
    monkeypatch.setenv("LEDGERFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    get_settings.cache_clear()
    from api.app import create_app

    with TestClient(create_app()) as client:
        yield client
    get_settings.cache_clear()


def test_health_ready_metrics(client: TestClient) -> None:
    health = client.get("/healthz")
    # It names the process that answered (several API processes share one port).
    assert health.json() == {"status": "ok", "process": health.headers["X-Ledgerflow-Process"], "pid": os.getpid()}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    parts = ready.json()["parts"]
    assert {name for name, part in parts.items() if part["ok"]} == {"postgresql", "temporal", "kafka"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "ledgerflow_http_requests_total" in metrics.text


def test_readyz_names_the_part_that_is_down(client: TestClient, test_stack: TestStack) -> None:
    kafka = test_stack.services["kafka"]
    kafka.stop()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"].startswith("application/problem+json")
        body = ready.json()
        assert body["code"] == "not_ready"
        assert "kafka" in body["detail"]
        assert body["parts"]["kafka"]["ok"] is False
        assert body["parts"]["postgresql"]["ok"] is True
    finally:
        kafka.start()
        kafka.wait_ready()
    assert client.get("/readyz").status_code == 200


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"
