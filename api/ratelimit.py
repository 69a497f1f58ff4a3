"""Request rate limits on the routes worth abusing: transfer creation and OTP submission.

Each route is limited per principal *and* per client IP (a sliding window in PostgreSQL,
security.ratelimit, so every API process counts against the same window):
per principal stops one account from flooding workflows or guessing codes across transfers;
per IP stops one machine from doing it with many accounts. Over a limit: 429 `rate_limited`
with Retry-After. Login has its own failure-based throttle in PostgreSQL (api/throttle.py).

The numbers come from `LEDGERFLOW_RATELIMIT_*` (e.g. LEDGERFLOW_RATELIMIT_TRANSFERS_PER_IP=0
to switch a limit off for a load test from one address). The per-IP defaults are loose because
many customers can share one NAT address. The route dependencies are in api/deps.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine

from api import metrics
from api.problems import Problem
from security.ratelimit import Rule, SlidingWindowLimiter, retry_after_header


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_RATELIMIT_", extra="ignore")

    window_s: float = 60.0
    # 0 switches that limit off.
    transfers_per_customer: int = 30
    transfers_per_ip: int = 600
    otp_per_customer: int = 20
    otp_per_ip: int = 300


@dataclass(frozen=True)
class RatePolicy:
    transfers_per_customer: Rule
    transfers_per_ip: Rule
    otp_per_customer: Rule
    otp_per_ip: Rule

    @classmethod
    def from_settings(cls, s: RateLimitSettings) -> RatePolicy:
        return cls(
            transfers_per_customer=Rule("transfers_per_customer", s.transfers_per_customer, s.window_s),
            transfers_per_ip=Rule("transfers_per_ip", s.transfers_per_ip, s.window_s),
            otp_per_customer=Rule("otp_per_customer", s.otp_per_customer, s.window_s),
            otp_per_ip=Rule("otp_per_ip", s.otp_per_ip, s.window_s),
        )


class RateLimits:
    """The API's limiter and policy (one per Runtime; tests may replace `policy`). The windows
    themselves are rows in PostgreSQL: this object holds no count."""

    def __init__(self, engine: Engine, policy: RatePolicy | None = None) -> None:
        self.policy = policy or RatePolicy.from_settings(RateLimitSettings())
        self.limiter = SlidingWindowLimiter(engine)

    def enforce(self, pairs: list[tuple[Rule, str]]) -> None:
        """Raises: Problem 429 rate_limited (with Retry-After) when any rule is full."""
        refusal = self.limiter.check([(rule, key) for rule, key in pairs if rule.limit > 0])
        if refusal is None:
            return
        metrics.RATE_LIMITED.labels(refusal.rule.name).inc()
        raise Problem(
            429,
            "rate_limited",
            "Too many requests",
            "Too many requests of this kind; slow down and retry after the indicated time.",
            headers={"Retry-After": retry_after_header(refusal.wait_s)},
        )
