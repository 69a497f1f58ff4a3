"""Tuning knobs of the relay and the consumers, with the reasons for their defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelayOptions:
    """How the outbox relay claims, produces and backs off.

    The defaults drain a backlog at tens of thousands of events per second on a small machine
    while keeping one claim transaction short (a few hundred milliseconds at most).
    """

    # Rows per page. Larger pages amortise the page query, the cursor's commit and the wait
    # for the last acks; smaller ones keep a redelivery after a crash short. Throughput was
    # flat from 2,000 to 10,000 in bench/relay_bench.py.
    batch_size: int = 2000
    # Producer batching: a short linger lets librdkafka fill batches while we are still
    # producing the claimed rows; the end-of-batch flush sends whatever is left at once.
    linger_ms: int = 5
    compression_type: str = "lz4"  # cheap on CPU, roughly halves JSON on the wire
    batch_bytes: int = 1_000_000
    # Upper bound on one delivery (librdkafka message.timeout.ms). A page waits at most this
    # long for acks; then the cursor stays before the rows not acknowledged, and the relay
    # backs off.
    delivery_timeout_ms: int = 30_000
    # Exponential backoff while Kafka (or PostgreSQL) is unavailable.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # Sleep after a claim found nothing to publish (or another relay leads): the latency
    # floor of an idle relay. 50 ms gave a publish lag p99 of ~160 ms at 300 events/s in
    # bench/relay_bench.py (bar: 500 ms), for a few cheap queries 20 times a second.
    # LISTEN/NOTIFY would need a trigger or a change to every posting function, and NOTIFY
    # serialises the committing transactions on one global lock: a cost on the posting path.
    idle_poll_s: float = 0.05
    # Sleep after a pass that found another relay leading. Only a leader's polls move events;
    # a follower's are there to take over when the leader stops, and at 50 ms the second
    # relay doubled the idle queries (each pass is a few round trips). 0.5 s bounds the
    # takeover; meanwhile the leader, polling every 50 ms, nearly always wins the lock again.
    follower_poll_s: float = 0.5
    # Pages the reader may hold ready while one is produced (relay.read_ahead).
    read_ahead_pages: int = 2
    # Pages produced and not yet acknowledged. With 1, Kafka idles while each page's last acks
    # come back; with 2 the next page is produced meanwhile. Per-key order is the same either
    # way (see relay.publisher: a page is recorded only after every earlier page was).
    pages_in_flight: int = 2
    # How often the backlog gauge is refreshed with a count(*) over the unpublished rows.
    backlog_refresh_s: float = 5.0
    client_id: str = "ledgerflow-relay"


@dataclass(frozen=True)
class ConsumerOptions:
    """How a consumer polls, applies and commits."""

    # Messages applied per database transaction (and per offset commit), at most: a batch is
    # the first message and whatever had already arrived behind it (relay.consumer._receive).
    batch_size: int = 500
    # How long one poll waits for a first message. It returns as soon as one arrives, so this
    # bounds only how often an idle consumer wakes (and checks `stop`), not any event's latency.
    poll_timeout_s: float = 0.5
    # Where a group without committed offsets starts: the consumers are projections that a
    # new group rebuilds from the beginning of the retained log.
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 10_000
    lag_refresh_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
