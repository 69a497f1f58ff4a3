"""A sliding-window-log rate limiter in PostgreSQL, shared by every API process.

Exact (no fixed-window burst at the boundary): each (rule, key) keeps one `rate_limit_hits`
row per request it allowed; a request is allowed while fewer than `limit` rows are younger
than the window. Refused requests are not recorded, so a client that keeps hammering is not
locked out for longer than the window.

Exact across processes too. Counting and then inserting in two steps would let N concurrent
requests on N processes all see room for one more; so one transaction takes a transaction
advisory lock per (rule, key) (in a fixed order, so two requests with overlapping pairs
cannot deadlock), counts, and inserts only if every pair has room. The lock is held for one
short transaction; requests of other keys never wait on it.

Storage: each row carries `expires_at` (hit + window). This key's dead rows are deleted in
the same transaction; the retention sweep removes the rows of keys that went quiet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_s: float


@dataclass(frozen=True)
class Refusal:
    rule: Rule  # the rule that needs the longest wait
    wait_s: float


# The database clock by default: every process (and host) then judges one window by one clock.
# Tests pass a clock of their own to move time without waiting.
Clock = Callable[[], datetime]

_NOW = "COALESCE(CAST(:now AS timestamptz), clock_timestamp())"

# With the pair's lock held: drop this key's rows past the window, then find the hit that has
# to leave the window before one more fits (the limit-th newest), if the window is full.
_OLDEST_BLOCKING = text(
    f"""
    WITH t AS (SELECT {_NOW} AS now),
    pruned AS (
        DELETE FROM rate_limit_hits h USING t
         WHERE h.rule = :rule AND h.key = :key AND h.hit_at <= t.now - make_interval(secs => :window_s)
    )
    SELECT t.now,
           (SELECT h.hit_at FROM rate_limit_hits h
             WHERE h.rule = :rule AND h.key = :key AND h.hit_at > t.now - make_interval(secs => :window_s)
             ORDER BY h.hit_at DESC OFFSET :limit - 1 LIMIT 1) AS blocking
      FROM t
    """
)

_RECORD = text(
    """
    INSERT INTO rate_limit_hits (rule, key, hit_at, expires_at)
    VALUES (:rule, :key, :now, CAST(:now AS timestamptz) + make_interval(secs => :window_s))
    """
)


class SlidingWindowLimiter:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock

    def check(self, rules_and_keys: list[tuple[Rule, str]]) -> Refusal | None:
        """Admit one request under every (rule, key) pair, or none of them.

        Returns None when admitted (and records it under each pair), else the refusing rule
        that needs the longest wait before it has room again (nothing is recorded then).
        """
        pairs = sorted(rules_and_keys, key=lambda pair: (pair[0].name, pair[1]))
        if not pairs:
            return None
        with self._engine.begin() as conn:
            for rule, key in pairs:
                _lock(conn, rule, key)
            refusal: Refusal | None = None
            now: datetime | None = self._clock() if self._clock is not None else None
            for rule, key in pairs:
                row = conn.execute(
                    _OLDEST_BLOCKING,
                    {"now": now, "rule": rule.name, "key": key, "window_s": rule.window_s, "limit": rule.limit},
                ).one()
                now = row.now  # one instant for every pair of this request
                if row.blocking is not None:
                    wait_s = (row.blocking - row.now).total_seconds() + rule.window_s
                    if refusal is None or wait_s > refusal.wait_s:
                        refusal = Refusal(rule, wait_s)
            if refusal is not None:
                return refusal
            for rule, key in pairs:
                conn.execute(_RECORD, {"rule": rule.name, "key": key, "now": now, "window_s": rule.window_s})
            return None

    def reset(self) -> None:
        """Forget every window (tests and load runs that start from nothing)."""
        with self._engine.begin() as conn:
            conn.execute(text("DELETE FROM rate_limit_hits"))


def _lock(conn: Connection, rule: Rule, key: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"ratelimit:{rule.name}:{key}"})


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110): round up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
