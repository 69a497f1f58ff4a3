"""A sliding-window-log rate limiter, in process memory.

Exact (no fixed-window burst at the boundary): each key keeps the times of the requests it
was allowed in the last window; a request is allowed while fewer than `limit` remain.
Refused requests are not recorded, so a client that keeps hammering is not locked out for
longer than the window.

Per process: with N API replicas a client gets up to N times the limit. That is acceptable
for abuse control in front of the real budgets, which live in PostgreSQL and are shared (5
OTP attempts per transfer, 100 OTP failures per customer per hour, login failures). Memory is
bounded: past `max_keys` distinct keys the least recently used ones are dropped (forgetting a
key only ever errs towards allowing, and only for keys idle longer than all the others).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_s: float


@dataclass(frozen=True)
class Refusal:
    rule: Rule  # the rule that needs the longest wait
    wait_s: float


class SlidingWindowLimiter:
    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._hits: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, rules_and_keys: list[tuple[Rule, str]]) -> Refusal | None:
        """Admit one request under every (rule, key) pair, or none of them.

        Returns None when admitted (and records it under each pair), else the refusing rule
        that needs the longest wait before it has room again (nothing is recorded then).
        """
        now = self._clock()
        with self._lock:
            refusal: Refusal | None = None
            for rule, key in rules_and_keys:
                hits = self._live(rule, key, now)
                if len(hits) >= rule.limit:
                    # The hit that must expire to make room for one more.
                    wait = hits[len(hits) - rule.limit] + rule.window_s - now
                    if refusal is None or wait > refusal.wait_s:
                        refusal = Refusal(rule, wait)
            if refusal is not None:
                return refusal
            for rule, key in rules_and_keys:
                self._live(rule, key, now).append(now)
                self._hits.move_to_end((rule.name, key))
            self._bound()
            return None

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()

    def _live(self, rule: Rule, key: str, now: float) -> deque[float]:
        hits = self._hits.get((rule.name, key))
        if hits is None:
            hits = self._hits[(rule.name, key)] = deque()
        while hits and hits[0] <= now - rule.window_s:
            hits.popleft()
        return hits

    def _bound(self) -> None:
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110): round up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
