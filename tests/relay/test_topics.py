"""The relay creates its topics with explicit partitions and retention, once."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # the package re-exports it untyped

from relay.topics import TOPICS, ensure_topics


def test_topics_exist_with_their_partitions_and_retention(relay_topics: str) -> None:
    assert ensure_topics(relay_topics) == [], "a second start creates nothing and does not fail"
    admin = AdminClient({"bootstrap.servers": relay_topics})
    metadata = admin.list_topics(timeout=30)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in TOPICS]
    configs = {resource.name: future.result(30) for resource, future in admin.describe_configs(resources).items()}
    for spec in TOPICS:
        assert len(metadata.topics[spec.name].partitions) == spec.partitions
        assert configs[spec.name]["retention.ms"].value == str(spec.retention_ms)
