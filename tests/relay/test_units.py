"""Pieces of the relay that need no broker or database."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from confluent_kafka import KafkaError

from relay.backoff import Backoff
from relay.envelope import MalformedEvent, parse_event
from relay.options import RelayOptions
from relay.producer import RepeatFilter, is_permanent, producer_config


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.failing and backoff.failures == 8
    backoff.reset()
    assert not backoff.failing and backoff.next_delay() <= 0.5
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_parse_event_reads_the_envelope() -> None:
    event_id = uuid.uuid4()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": "/ledgerflow/ledger",
        "type": "transfer.posted",
        "subject": "t-1",
        "time": "2025-01-02T03:04:05.123456Z",
        "datacontenttype": "application/json",
        "data": {"transfer_id": "t-1"},
    }
    event = parse_event(json.dumps(envelope).encode())
    assert (event.id, event.type, event.subject, event.data) == (event_id, "transfer.posted", "t-1", envelope["data"])
    assert event.time.isoformat() == "2025-01-02T03:04:05.123456+00:00"


def _envelope(**changes: object) -> bytes:
    envelope = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": "x", "source": "s"} | changes
    return json.dumps({k: v for k, v in envelope.items() if v is not None}).encode()


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        b"[1, 2]",
        _envelope(specversion="0.3"),
        _envelope(id="nope"),
        _envelope(type=None),
        _envelope(data=[1]),
        _envelope(time="soon"),
    ],
)
def test_parse_event_refuses_what_is_not_an_envelope(value: bytes | None) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(value)


def test_producer_is_idempotent_with_explicit_batching() -> None:
    config = producer_config("k:9092", RelayOptions(linger_ms=7, compression_type="zstd"))
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert (config["linger.ms"], config["compression.type"]) == (7, "zstd")
    assert config["message.timeout.ms"] == RelayOptions().delivery_timeout_ms


def test_only_unfixable_errors_park_a_row() -> None:
    assert is_permanent(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert is_permanent(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not is_permanent(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert not is_permanent(KafkaError(KafkaError._TRANSPORT))
    assert not is_permanent(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
    assert not is_permanent(KafkaError(KafkaError._UNKNOWN_TOPIC)), "recreated, not parked"


def test_repeat_filter_lets_a_reconnect_message_through_once_per_interval() -> None:
    repeat = RepeatFilter(interval_s=60)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("relay.kafka", logging.ERROR, __file__, 1, message, None, None)

    assert repeat.filter(record("Connect to 127.0.0.1:9092 failed (after 0ms in state CONNECT)"))
    assert not repeat.filter(record("Connect to 127.0.0.1:9092 failed (after 3ms in state CONNECT)"))
    assert repeat.filter(record("another message"))
