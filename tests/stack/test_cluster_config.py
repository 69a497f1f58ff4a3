"""The cluster profile's generated configuration (no build, no server: runs in `make test`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from config.settings import Settings
from stack import cluster, kafka, kafka_cluster, temporal_server
from stack.launcher import Stack


def test_server_config_uses_postgres_for_both_stores_with_four_shards(tmp_path: Path) -> None:
    ports = temporal_server.ServerPorts.from_list(17233, list(range(17234, 17242)))
    text = temporal_server.server_config(
        host="127.0.0.1", pg_port=15432, ports=ports, dynamic_config=tmp_path / "dc.yaml", shards=4
    )
    doc = yaml.safe_load(text)
    persistence = doc["persistence"]
    assert persistence["numHistoryShards"] == 4
    stores = persistence["datastores"]
    assert stores[persistence["defaultStore"]]["sql"]["databaseName"] == "temporal"
    assert stores[persistence["visibilityStore"]]["sql"]["databaseName"] == "temporal_visibility"
    for store in stores.values():
        assert store["sql"]["pluginName"] == "postgres12"
        assert store["sql"]["connectAddr"] == "127.0.0.1:15432"
    grpc_ports = {role: svc["rpc"]["grpcPort"] for role, svc in doc["services"].items()}
    assert grpc_ports == {"frontend": 17233, "history": 17236, "matching": 17238, "worker": 17240}
    every_port = [port for svc in doc["services"].values() for key, port in svc["rpc"].items() if key.endswith("Port")]
    assert sorted(every_port) == list(range(17233, 17242)), "nine distinct ports, all from the settings"
    dynamic = yaml.safe_load(temporal_server.dynamic_config_yaml())
    assert dynamic["system.forceSearchAttributesCacheRefreshOnRead"] == [{"value": True}]


def test_three_kafka_nodes_replicate_three_ways_with_two_in_sync(tmp_path: Path) -> None:
    nodes = kafka_cluster.broker_services(
        home=tmp_path, libs=tmp_path, host="127.0.0.1", ports=[1, 3, 5], controller_ports=[2, 4, 6], logs=tmp_path
    )
    assert [svc.name for svc in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    props = kafka.server_properties(
        home=tmp_path,
        host="127.0.0.1",
        port=1,
        controller_port=2,
        partitions=3,
        node_id=1,
        voters=kafka_cluster.voters("127.0.0.1", [2, 4, 6]),
        overrides=kafka_cluster.CLUSTER_OVERRIDES,
    )
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["controller.quorum.voters"] == "1@127.0.0.1:2,2@127.0.0.1:4,3@127.0.0.1:6"
    assert lines["default.replication.factor"] == "3"
    assert lines["min.insync.replicas"] == "2"
    assert lines["offsets.topic.replication.factor"] == "3"
    assert lines["transaction.state.log.min.isr"] == "2"
    # The single dev node keeps its own settings.
    single = kafka.server_properties(home=tmp_path, host="127.0.0.1", port=1, controller_port=2, partitions=3)
    assert "min.insync.replicas=1" in single and "controller.quorum.voters=1@127.0.0.1:2" in single


def test_cluster_profile_ports_and_bootstrap() -> None:
    settings = Settings(profile="cluster", kafka_bootstrap="127.0.0.1:19092", kafka_controller_port=19093)
    assert cluster.kafka_ports(settings) == [19092, 19094, 19096]
    assert cluster.kafka_controller_ports(settings) == [19093, 19095, 19097]
    stack = Stack(settings, log=lambda message: None)
    # Every process of the stack gets all three brokers.
    assert stack.env()["LEDGERFLOW_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    ports = cluster.temporal_ports(settings.model_copy(update={"temporal_address": "127.0.0.1:17233"}))
    assert ports.frontend == 17233 and ports.worker_membership == 17241
    # The dev profile is untouched.
    dev = Stack(Settings(kafka_bootstrap="127.0.0.1:19092"), log=lambda message: None)
    assert dev.env()["LEDGERFLOW_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"


def test_the_web_ui_server_is_pinned_to_the_dev_profiles_ui() -> None:
    """The cluster profile's UI server (stack/temporal_ui_server/) is the module version the dev
    profile's temporal CLI embeds: one UI, whichever profile staff open."""
    import subprocess

    from stack import temporal_ui_server
    from stack.temporal import temporal_binary

    go_mod = (temporal_ui_server.SOURCE_DIR / "go.mod").read_text()
    assert f"require {temporal_ui_server.MODULE} {temporal_ui_server.VERSION}\n" in go_mod
    go_sum = (temporal_ui_server.SOURCE_DIR / "go.sum").read_text()
    assert f"{temporal_ui_server.MODULE} {temporal_ui_server.VERSION} h1:" in go_sum
    cli = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"UI {temporal_ui_server.VERSION.removeprefix('v')})" in cli, cli
