"""Reading CloudEvents 1.0 structured-mode envelopes off Kafka messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID


class MalformedEvent(ValueError):
    """A message is not a CloudEvents envelope this consumer can read."""


@dataclass(frozen=True)
class Event:
    id: UUID
    type: str
    source: str
    subject: str | None
    time: datetime
    data: dict[str, Any]


def parse_event(value: bytes | str | None) -> Event:
    """Parse a message value.

    Raises:
        MalformedEvent: not JSON, not an object, a required attribute missing or invalid.
    """
    if value is None:
        raise MalformedEvent("empty message")
    try:
        envelope = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise MalformedEvent("the envelope is not a JSON object")
    if envelope.get("specversion") != "1.0":
        raise MalformedEvent(f"unsupported specversion {envelope.get('specversion')!r}")
    try:
        event_id = UUID(str(envelope["id"]))
        event_type = str(envelope["type"])
        source = str(envelope["source"])
    except (KeyError, ValueError) as exc:
        raise MalformedEvent(f"missing or invalid id/type/source: {exc}") from exc
    data = envelope.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedEvent("data is not a JSON object")
    subject = envelope.get("subject")
    return Event(
        id=event_id,
        type=event_type,
        source=source,
        subject=None if subject is None else str(subject),
        time=parse_time(envelope.get("time")),
        data=data,
    )


def parse_time(value: object) -> datetime:
    """RFC 3339 timestamp; a missing one is read as now (the attribute is optional).

    Raises:
        MalformedEvent: present but not a timestamp.
    """
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedEvent(f"invalid time {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def data_uuid(data: dict[str, Any], name: str, *, required: bool = True) -> UUID | None:
    """A UUID member of `data`.

    Raises:
        MalformedEvent: missing (when required) or not a UUID.
    """
    value = data.get(name)
    if value is None:
        if required:
            raise MalformedEvent(f"data.{name} is missing")
        return None
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise MalformedEvent(f"data.{name} is not a UUID: {value!r}") from exc


def data_text(data: dict[str, Any], name: str) -> str:
    """A required non-empty string member of `data`.

    Raises:
        MalformedEvent: missing, empty or not a string.
    """
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"data.{name} is missing or not a string")
    return value
