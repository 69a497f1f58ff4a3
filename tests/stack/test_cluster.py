"""The cluster profile is what it says: the Temporal server on PostgreSQL with 4 history shards,
its schema at the newest version of the module's folders, the namespace and search attributes
made through the operator API, its Web UI (the UI server module) behind the ops portal with the
codec, and three Kafka brokers replicating topics three ways.

Runs under `make test-cluster` (LEDGERFLOW_PROFILE=cluster); skipped in the default suite, which
runs the dev server and must not build Go.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH
from stack import kafka_cluster, temporal_server
from stack.temporal import SEARCH_ATTRIBUTES
from tests.conftest import TestStack
from tests.totp_auth import Authenticator

pytestmark = pytest.mark.skipif(
    os.environ.get("LEDGERFLOW_PROFILE") != "cluster", reason="the cluster profile only (make test-cluster)"
)


async def test_temporal_is_the_server_on_postgresql_with_four_shards(
    test_stack: TestStack, temporal_address: str
) -> None:
    client = await Client.connect(temporal_address, namespace=test_stack.settings.temporal_namespace)
    info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    assert info.server_version == temporal_server.VERSION.removeprefix("v")
    assert info.history_shard_count == temporal_server.NUM_HISTORY_SHARDS
    assert info.persistence_store == "postgres12"
    assert info.visibility_store == "postgres12"
    attributes = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=test_stack.settings.temporal_namespace)
    )
    assert set(SEARCH_ATTRIBUTES) <= set(attributes.custom_attributes)

    # The schema tool took both databases to the newest folder shipped in the module.
    build = temporal_server.ensure_server_build()
    s = test_stack.settings
    for db in temporal_server.SCHEMA_DIRS:
        newest = max(
            (p.name.removeprefix("v") for p in build.schema_dir(db).iterdir() if p.is_dir()),
            key=lambda v: tuple(int(x) for x in v.split(".")),
        )
        assert temporal_server.schema_version(s.host, s.pg_port, db) == newest, db


def test_kafka_has_three_brokers_and_topics_replicated_three_ways(kafka_bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._config import ConfigResource  # the public module leaves it out of __all__

    from relay.topics import ensure_topics

    assert len(kafka_bootstrap.split(",")) == kafka_cluster.BROKERS
    ensure_topics(kafka_bootstrap)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == kafka_cluster.BROKERS
    ours = [t for name, t in metadata.topics.items() if name.startswith("ledgerflow.")]
    assert ours
    for topic in ours:
        for partition in topic.partitions.values():
            assert len(partition.replicas) == kafka_cluster.REPLICATION_FACTOR, topic.topic
        assert topic.topic is not None
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic.topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        assert configs["min.insync.replicas"].value == str(kafka_cluster.MIN_INSYNC_REPLICAS)


ADMIN = ("admin@ledgerflow.local", "admin-password")


@pytest.fixture(scope="module")
def ops_portal(test_stack: TestStack) -> Iterator[httpx.Client]:
    """The whole system on the cluster profile (one process of each kind), and a client signed in
    to the ops portal as the dev admin, through its login form."""
    from chaos.workload import dev_admin_totp_uri

    test_stack.settings = test_stack.settings.model_copy(
        update={"api_processes": 1, "worker_processes": 1, "relay_processes": 1}
    )
    test_stack.stack.settings = test_stack.settings
    base_url = test_stack.full()
    try:
        with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as http:
            form = http.get("/ops/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf is not None, form.text
            code = Authenticator.of(dev_admin_totp_uri(test_stack)).code()
            login = http.post(
                "/ops/login",
                data={"email": ADMIN[0], "password": ADMIN[1], "totp": code, "csrf_token": csrf.group(1), "next": ""},
            )
            assert login.status_code == 303, login.text
            assert "lf_ops" in http.cookies
            yield http
    finally:
        test_stack.stop_apps()


def test_the_web_ui_lists_a_workflow_through_the_ops_portal(ops_portal: httpx.Client) -> None:
    http = ops_portal
    # The UI itself, served by the UI server under the portal's path.
    page = http.get(f"{TEMPORAL_UI_PATH}/")
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:300]
    # Its codec is the portal's same-origin one, as on the dev profile.
    settings = http.get(f"{TEMPORAL_UI_PATH}/api/v1/settings").json()
    assert settings["Codec"]["Endpoint"] == TEMPORAL_UI_CODEC_PATH

    # A workflow started now, by a transfer the API refuses (no funds: its workflow, no row).
    customer = httpx.Client(base_url=str(http.base_url), timeout=60, trust_env=False)
    email, password = f"ui-{uuid.uuid4().hex[:8]}@example.test", "cluster-ui-1"
    assert customer.post(
        "/v1/signup", json={"email": email, "password": password, "full_name": "Grace Hopper"}
    ).is_success
    token = customer.post("/v1/auth/token", data={"username": email, "password": password}).json()
    customer.headers["Authorization"] = f"Bearer {token['access_token']}"
    source, destination = (customer.post("/v1/accounts", json={"currency": "USD"}).json()["id"] for _ in range(2))
    refused = customer.post(
        "/v1/transfers",
        json={
            "source_account_id": source,
            "destination_account_id": destination,
            "amount_minor": 1_00,
            "currency": "USD",
            "description": "nothing to send",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds", refused.text
    customer_id = customer.get("/v1/me").json()["customer_id"]
    customer.close()

    # The UI lists it (SQL visibility on PostgreSQL, the search attributes made through the
    # operator API), through the proxy, under the staff session.
    query = f'CustomerId="{customer_id}"'
    deadline = time.monotonic() + 60
    while True:
        answer = http.get(f"{TEMPORAL_UI_PATH}/api/v1/namespaces/default/workflows", params={"query": query})
        assert answer.status_code == 200, answer.text
        executions = answer.json().get("executions", [])
        if executions or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(executions) == 1, answer.text
    workflow_id = executions[0]["execution"]["workflowId"]
    assert workflow_id.startswith("transfer-")
    # Its page: the portal resolves the latest run through the UI's describe call.
    opened = http.get(f"{TEMPORAL_UI_PATH}/namespaces/default/workflows/{workflow_id}", follow_redirects=False)
    run_id = executions[0]["execution"]["runId"]
    assert opened.status_code == 302, opened.text
    assert opened.headers["location"].endswith(f"/workflows/{workflow_id}/{run_id}/history")

    # Nobody else: without the staff session the same call is refused.
    with httpx.Client(base_url=str(http.base_url), timeout=30, trust_env=False) as anonymous:
        assert anonymous.get(f"{TEMPORAL_UI_PATH}/api/v1/namespaces/default/workflows").status_code == 401
