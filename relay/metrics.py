"""Prometheus metrics of the relay process (publisher and consumers).

They live in the default registry; the relay process exposes it with
`prometheus_client.start_http_server` when LEDGERFLOW_RELAY_METRICS_PORT is set.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_BACKLOG: Final = Gauge(
    "ledgerflow_relay_outbox_backlog", "Outbox rows waiting to be published (unpublished and not parked)"
)
PUBLISH_LAG: Final = Histogram(
    "ledgerflow_relay_publish_lag_seconds",
    "Per published page: time from its oldest row's creation to Kafka's last acknowledgement of the page",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
PUBLISHED: Final = Counter("ledgerflow_relay_published_total", "Outbox rows published to Kafka", ["topic"])
PARKED: Final = Counter(
    "ledgerflow_relay_parked_total", "Outbox rows parked after a permanent publish error (need an operator)"
)
PUBLISH_FAILURES: Final = Counter(
    "ledgerflow_relay_publish_failures_total", "Rows whose publish failed transiently and will be retried"
)
BATCH_SECONDS: Final = Histogram(
    "ledgerflow_relay_batch_seconds",
    "Duration of one page: produce -> acks -> cursor committed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
DEPENDENCY_UP: Final = Gauge(
    "ledgerflow_relay_dependency_up",
    "1 when the relay last reached the dependency, 0 while it backs off",
    ["dependency"],
)
BACKOFF_SECONDS: Final = Gauge(
    "ledgerflow_relay_backoff_seconds", "Current retry delay of the publisher (0 when healthy)"
)

CONSUMER_LAG: Final = Gauge(
    "ledgerflow_consumer_lag", "Messages between a consumer's position and the partition's end", ["consumer", "topic"]
)
CONSUMED: Final = Counter(
    "ledgerflow_consumer_events_total",
    "Events seen by a consumer, by outcome (applied, duplicate, malformed, failed)",
    ["consumer", "outcome"],
)
DEAD_LETTERS: Final = Counter(
    "ledgerflow_consumer_dead_letters_total",
    "Events a consumer could not apply, parked in consumer_dead_letters for an operator",
    ["consumer"],
)
