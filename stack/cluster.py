"""The cluster profile: which ports its parts use, and the facts docker-compose.yml must match.

`ledgerflow up --profile cluster` (LEDGERFLOW_PROFILE=cluster) runs the Temporal server from
its Go module on PostgreSQL (stack/temporal_server.py) and three Kafka brokers
(stack/kafka_cluster.py) in place of the dev server and the single broker; the application
processes are the same. tests/smoke/test_compose.py compares docker-compose.yml with
`PROFILE_FACTS`, so the compose file promises only what this profile has run.
"""

from __future__ import annotations

from typing import Final

from config.settings import Settings
from stack import kafka_cluster, temporal_server, temporal_ui_server

# What the profile proves and the compose file must say the same of.
PROFILE_FACTS: Final[dict[str, object]] = {
    "temporal_server_version": temporal_server.VERSION.removeprefix("v"),
    "temporal_num_history_shards": temporal_server.NUM_HISTORY_SHARDS,
    "temporal_sql_plugin": temporal_server.SQL_PLUGIN,
    "temporal_databases": (temporal_server.DB_MAIN, temporal_server.DB_VISIBILITY),
    "temporal_ui_version": temporal_ui_server.VERSION.removeprefix("v"),
    "kafka_brokers": kafka_cluster.BROKERS,
    "kafka_replication_factor": kafka_cluster.REPLICATION_FACTOR,
    "kafka_min_insync_replicas": kafka_cluster.MIN_INSYNC_REPLICAS,
}


def _ports(spec: str) -> list[int]:
    return [int(part.rsplit(":", 1)[-1]) for part in spec.split(",") if part.strip()]


def kafka_ports(settings: Settings) -> list[int]:
    """The three brokers' client ports (from kafka_bootstrap; one port named: it, +2, +4)."""
    ports = _ports(settings.kafka_bootstrap)
    if len(ports) == 1:
        ports = [ports[0] + 2 * i for i in range(kafka_cluster.BROKERS)]
    return ports


def kafka_controller_ports(settings: Settings) -> list[int]:
    if settings.kafka_controller_ports:
        return _ports(settings.kafka_controller_ports)
    return [settings.kafka_controller_port + 2 * i for i in range(kafka_cluster.BROKERS)]


def temporal_ports(settings: Settings) -> temporal_server.ServerPorts:
    frontend = settings.temporal_port
    internal = _ports(settings.temporal_internal_ports) or [frontend + i for i in range(1, 9)]
    return temporal_server.ServerPorts.from_list(frontend, internal)


def cluster_settings(settings: Settings) -> Settings:
    """The settings with kafka_bootstrap naming all three brokers (what every process gets)."""
    return settings.model_copy(
        update={"kafka_bootstrap": kafka_cluster.bootstrap(settings.host, kafka_ports(settings))}
    )
