"""Prometheus metrics of the API. Labels are low-cardinality and never carry secrets (no OTP
code, no token, no e-mail): route templates, statuses and outcome names only."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

REQUESTS: Final = Counter("ledgerflow_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY: Final = Histogram("ledgerflow_http_request_seconds", "HTTP request latency", ["method", "route"])
TRANSFER_TRANSITIONS: Final = Counter(
    "ledgerflow_api_transfers_total",
    "Transfer statuses observed by the API (initiation, OTP, cancel, review)",
    ["status"],
)
OTP_FAILURES: Final = Counter(
    "ledgerflow_api_otp_failures_total", "OTP submissions that did not authorise the transfer", ["outcome"]
)
LOGINS: Final = Counter("ledgerflow_api_logins_total", "Login attempts", ["realm", "outcome"])
IDEMPOTENT_REPLAYS: Final = Counter(
    "ledgerflow_api_idempotent_replays_total", "Responses replayed for a repeated Idempotency-Key", ["route"]
)
DENIALS: Final = Counter(
    "ledgerflow_api_denials_total", "Requests refused by authentication or roles", ["realm", "reason"]
)
RATE_LIMITED: Final = Counter("ledgerflow_api_rate_limited_total", "Requests refused by a rate limit", ["rule"])
CODEC_PAYLOADS: Final = Counter(
    "ledgerflow_api_codec_payloads_total", "Payloads run through the Temporal UI codec endpoint", ["operation"]
)
