"""Capped exponential backoff with jitter, for retrying while a dependency is down."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `initial_s` up to `max_s`.

    Each delay is drawn from [d/2, d] ("equal jitter"), so relays and consumers that lost the
    same broker at the same moment do not all come back in lockstep.
    """

    def __init__(self, initial_s: float, max_s: float) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        ceiling = min(self.max_s, self.initial_s * 2 ** min(self.failures, 32))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self.failures > 0
