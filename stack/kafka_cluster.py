"""Three Kafka brokers in KRaft mode for the cluster profile, from the same Maven jars.

Combined nodes (`process.roles=broker,controller` on each of the three), not three brokers
beside three dedicated controllers: six JVMs would not fit a 2-core machine beside PostgreSQL
and the Temporal server, and three combined nodes keep the property that matters here, a
controller quorum of three voters, which survives the loss of any one node (2 of 3 remain)
just as its partitions do. Production with many brokers would separate them (a controller
then never competes with produce traffic for CPU); docker-compose.yml says so too.

Replication factor 3 and `min.insync.replicas=2` for every topic, internal ones included: with
the relay's `acks=all` (relay/producer.py) a publish is acknowledged only when two brokers
hold it, so one broker killed loses nothing acknowledged, and publishing goes on after the
leader election.
"""

from __future__ import annotations

from pathlib import Path

from stack import kafka
from stack.service import Service

BROKERS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
# Each broker's heap: three share the machine, where the single dev broker has 1 GiB.
BROKER_HEAP = "512m"

# What the cluster's brokers set beyond the single node's server.properties (stack/kafka.py).
CLUSTER_OVERRIDES: dict[str, str] = {
    "default.replication.factor": str(REPLICATION_FACTOR),
    "min.insync.replicas": str(MIN_INSYNC_REPLICAS),
    "offsets.topic.replication.factor": str(REPLICATION_FACTOR),
    "transaction.state.log.replication.factor": str(REPLICATION_FACTOR),
    "transaction.state.log.min.isr": str(MIN_INSYNC_REPLICAS),
    "share.coordinator.state.topic.replication.factor": str(REPLICATION_FACTOR),
    "share.coordinator.state.topic.min.isr": str(MIN_INSYNC_REPLICAS),
    # A broker that comes back catches up before it leads again (no unclean election).
    "unclean.leader.election.enable": "false",
    "auto.leader.rebalance.enable": "true",
}


def voters(host: str, controller_ports: list[int]) -> str:
    """The static quorum: node i's controller listener (see kafka.server_properties for why static)."""
    return ",".join(f"{i}@{host}:{port}" for i, port in enumerate(controller_ports, start=1))


def bootstrap(host: str, ports: list[int]) -> str:
    return ",".join(f"{host}:{port}" for port in ports)


def broker_services(
    *, home: Path, libs: Path, host: str, ports: list[int], controller_ports: list[int], logs: Path
) -> list[Service]:
    """One Service per node, `kafka-1`..`kafka-3`, each with its own data dir under home.

    The three must be started together (each waits for a quorum of controllers before it
    answers): start them all, then wait for each.
    """
    quorum = voters(host, controller_ports)
    return [
        kafka.kafka_service(
            home=home / f"node-{i}",
            libs=libs,
            host=host,
            port=port,
            controller_port=controller_port,
            log_path=logs / f"kafka-{i}.log",
            name=f"kafka-{i}",
            node_id=i,
            voters=quorum,
            overrides=CLUSTER_OVERRIDES,
            heap=BROKER_HEAP,
        )
        for i, (port, controller_port) in enumerate(zip(ports, controller_ports, strict=True), start=1)
    ]
