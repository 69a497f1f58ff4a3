"""The cluster profile is what it says: the Temporal server on PostgreSQL with 4 history shards,
its schema at the newest version of the module's folders, the namespace and search attributes
made through the operator API, and three Kafka brokers replicating topics three ways.

Runs under `make test-cluster` (LEDGERFLOW_PROFILE=cluster); skipped in the default suite, which
runs the dev server and must not build Go.
"""

from __future__ import annotations

import os

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client

from stack import kafka_cluster, temporal_server
from stack.temporal import SEARCH_ATTRIBUTES
from tests.conftest import TestStack

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
