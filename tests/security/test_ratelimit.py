"""The sliding-window limiter on its own (a fake clock)."""

from __future__ import annotations

from security.ratelimit import Rule, SlidingWindowLimiter, retry_after_header

PER_USER = Rule("per_user", 3, 10.0)
PER_IP = Rule("per_ip", 5, 10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_slides_instead_of_resetting() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(clock=clock)
    for step in (0.0, 4.0, 8.0):
        clock.now = 1000.0 + step
        assert limiter.check([(PER_USER, "u")]) is None
    clock.now = 1009.0
    refusal = limiter.check([(PER_USER, "u")])
    assert refusal is not None and refusal.rule == PER_USER and abs(refusal.wait_s - 1.0) < 1e-9
    clock.now = 1010.0  # the first hit (t=1000) has left the window: room for exactly one
    assert limiter.check([(PER_USER, "u")]) is None
    assert limiter.check([(PER_USER, "u")]) is not None


def test_refused_requests_are_not_counted_and_admission_is_all_or_nothing() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(clock=clock)
    for _ in range(3):
        assert limiter.check([(PER_USER, "a"), (PER_IP, "ip")]) is None
    # "a" is full: the request is refused and the IP's count does not grow.
    for _ in range(10):
        assert limiter.check([(PER_USER, "a"), (PER_IP, "ip")]) is not None
    assert limiter.check([(PER_USER, "b"), (PER_IP, "ip")]) is None
    assert limiter.check([(PER_USER, "c"), (PER_IP, "ip")]) is None
    refusal = limiter.check([(PER_USER, "d"), (PER_IP, "ip")])
    assert refusal is not None and refusal.rule == PER_IP


def test_memory_is_bounded() -> None:
    limiter = SlidingWindowLimiter(max_keys=100, clock=Clock())
    for n in range(10_000):
        limiter.check([(PER_USER, f"user-{n}")])
    assert len(limiter._hits) == 100


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
    assert retry_after_header(59.0) == "59"
