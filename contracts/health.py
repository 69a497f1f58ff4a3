"""Input and result of the health check's database ping (plain values: they travel through history)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DbPingInput:
    probe_id: str


@dataclass(frozen=True)
class DbPingResult:
    probe_id: str
    server_version: str
