"""Input and result of the standing-order run activity (plain values: they travel through history)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.transfer import TransferRequest


@dataclass(frozen=True)
class StandingOrderRunInput:
    """What the schedule's action passes to each run: the order, nothing else (the order's
    terms are read when the run begins, so a paused or cancelled order is seen at once)."""

    standing_order_id: str


@dataclass(frozen=True)
class BeginRunInput:
    standing_order_id: str
    scheduled_for: str  # ISO date (UTC) of the run


@dataclass(frozen=True)
class BeginRunResult:
    # The run's transfer (its id derived from the order and the date); None: nothing to run.
    request: TransferRequest | None
    reason: str = ""
