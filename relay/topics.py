"""The Kafka topics Ledgerflow publishes to, and their creation at relay start-up.

The broker refuses to auto-create topics (a typo must fail, not invent a topic), so the relay
creates them with an explicit partition count and retention before it publishes anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin re-exports it, untyped

from ledger.states import Topic

log = logging.getLogger(__name__)

DAY_MS: Final = 24 * 60 * 60 * 1000

# Plain strings (`.value`): librdkafka's bindings refuse a str subclass in some calls
# (AdminClient.describe_configs: "Expected .name to be str type, not Topic").
TRANSFERS: Final = Topic.TRANSFERS.value
ACCOUNTS: Final = Topic.ACCOUNTS.value
NOTIFICATIONS: Final = Topic.NOTIFICATIONS.value
RISK: Final = Topic.RISK.value


class TopicSetupError(Exception):
    """A topic could not be created (other than because it already exists)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), **self.extra_config}


# Partitions: keys are transfer and account ids, so load spreads evenly; 6 leaves room for
# six consumers of a group without re-partitioning (which would break per-key order).
# Retention: a week of transfer and account events lets a new projection be rebuilt from
# the log; notifications carry one-time passcodes that expire in minutes, so they are kept
# only a day (the inbox table is the record, not the topic).
TOPICS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(TRANSFERS, partitions=6, retention_ms=7 * DAY_MS),
    TopicSpec(ACCOUNTS, partitions=6, retention_ms=7 * DAY_MS),
    TopicSpec(NOTIFICATIONS, partitions=3, retention_ms=1 * DAY_MS),
    TopicSpec(Topic.OPS.value, partitions=1, retention_ms=30 * DAY_MS),  # rare alerts: in order, kept a month
    # Risk verdicts, keyed by transfer id like the transfers they judge; kept as long.
    TopicSpec(RISK, partitions=6, retention_ms=7 * DAY_MS),
)


def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS, *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; an existing topic is left as it is.

    The replication factor is min(3, brokers in the cluster): 1 on the embedded single-node
    broker, 3 on a real cluster, with min.insync.replicas one below it so acks=all survives
    the loss of one broker.

    Returns:
        The names of the topics this call created.

    Raises:
        TopicSetupError: the cluster did not answer, or refused to create a topic.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10_000})
    try:
        brokers = len(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException as exc:
        raise TopicSetupError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    replication = max(1, min(3, brokers))
    min_isr = str(max(1, replication - 1))
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=replication,
            config={"min.insync.replicas": min_isr, **spec.config()},
        )
        for spec in specs
    ]
    created: list[str] = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicSetupError(f"could not create topic {name}: {exc}") from exc
        except TimeoutError as exc:
            raise TopicSetupError(f"Kafka did not confirm topic {name} within {timeout_s:.0f}s") from exc
    return created
