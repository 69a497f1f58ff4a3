"""The sliding-window limiter on its own: its windows are rows in PostgreSQL (a fake clock
moves time; the concurrency test uses the database's own clock)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from ledger.db import make_engine
from security.ratelimit import Rule, SlidingWindowLimiter, retry_after_header

PER_USER = Rule("per_user", 3, 10.0)
PER_IP = Rule("per_ip", 5, 10.0)
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=4)
    yield engine
    engine.dispose()


def test_window_slides_instead_of_resetting(engine: Engine) -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(engine, clock=clock)
    for step in (0.0, 4.0, 8.0):
        clock.at(step)
        assert limiter.check([(PER_USER, "u")]) is None
    clock.at(9.0)
    refusal = limiter.check([(PER_USER, "u")])
    assert refusal is not None and refusal.rule == PER_USER and abs(refusal.wait_s - 1.0) < 1e-6
    clock.at(10.0)  # the first hit (t=0) has left the window: room for exactly one
    assert limiter.check([(PER_USER, "u")]) is None
    assert limiter.check([(PER_USER, "u")]) is not None


def test_refused_requests_are_not_counted_and_admission_is_all_or_nothing(engine: Engine) -> None:
    limiter = SlidingWindowLimiter(engine, clock=Clock())
    for _ in range(3):
        assert limiter.check([(PER_USER, "a"), (PER_IP, "ip")]) is None
    # "a" is full: the request is refused and the IP's count does not grow.
    for _ in range(10):
        assert limiter.check([(PER_USER, "a"), (PER_IP, "ip")]) is not None
    assert limiter.check([(PER_USER, "b"), (PER_IP, "ip")]) is None
    assert limiter.check([(PER_USER, "c"), (PER_IP, "ip")]) is None
    refusal = limiter.check([(PER_USER, "d"), (PER_IP, "ip")])
    assert refusal is not None and refusal.rule == PER_IP


def test_rows_expire_and_a_key_prunes_its_own_dead_rows(engine: Engine) -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(engine, clock=clock)
    for n in range(3):
        assert limiter.check([(PER_USER, "u"), (PER_USER, f"other-{n}")]) is None
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key, hit_at, expires_at FROM rate_limit_hits WHERE key = 'u'")).all()
    # Each hit says when it stops counting (what the retention sweep deletes by).
    assert [(r.expires_at - r.hit_at).total_seconds() for r in rows] == [10.0, 10.0, 10.0]
    clock.at(30.0)
    assert limiter.check([(PER_USER, "u")]) is None
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM rate_limit_hits WHERE key = 'u'")).scalar_one()
        dead = conn.execute(
            text("SELECT count(*) FROM rate_limit_hits WHERE expires_at <= :t"), {"t": clock.now}
        ).scalar_one()
    assert left == 1  # the three old hits of "u" went with this check
    assert dead == 3  # the quiet keys' rows wait for the retention sweep


def _hammer(url: str, start: multiprocessing.synchronize.Event, admitted: multiprocessing.Queue[int]) -> None:
    # One OS process with its own engine: what one API process does.
    engine = make_engine(url, pool_size=4)
    limiter = SlidingWindowLimiter(engine)
    with engine.connect() as conn:  # connections open before the start: the burst is all checks
        conn.execute(text("SELECT 1"))
    start.wait()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: limiter.check([(Rule("burst", 7, 60.0), "k")]), range(12)))
    admitted.put(sum(1 for r in results if r is None))
    engine.dispose()


def test_the_window_is_exact_under_concurrency_across_processes(migrated_db_url: str) -> None:
    """Six processes send 72 requests at once (four at a time each) for one key whose limit is
    7: exactly 7 pass. A check-then-insert without the per-key lock lets more through."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    admitted: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(migrated_db_url, start, admitted)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    total = sum(admitted.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert total == 7


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
    assert retry_after_header(59.0) == "59"
