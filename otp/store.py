"""OTP challenges in PostgreSQL: issue one per transfer, check submitted codes exactly once.

Each check runs in one transaction holding the challenge row lock, so two concurrent
submissions cannot both spend the last attempt, and each submission id is recorded with its
outcome, so a retried check returns the first answer instead of costing a second attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, LiteralString

from psycopg.rows import dict_row

from ledger.db import Conn
from ledger.states import OtpChallengeState, OtpOutcome
from otp.codes import Binding, code_hash, generate_code, matches

# OWASP ASVS 2.2.1: no more than 100 failed attempts per hour per account, across transfers.
CUSTOMER_FAILURES_PER_HOUR = 100


@dataclass(frozen=True)
class IssuedChallenge:
    code: str | None  # None when the challenge already existed (the code was sent before)
    expires_at: datetime
    attempts_left: int


@dataclass(frozen=True)
class CheckResult:
    # accepted | invalid | locked | expired | throttled | not_found
    outcome: str
    attempts_left: int
    # True when this submission was checked before and this is its recorded answer: the
    # caller must not apply the outcome's effects a second time.
    replayed: bool = False


def _one(conn: Conn, sql: LiteralString, params: dict[str, Any]) -> dict[str, Any] | None:
    # LiteralString: SQL here is always a literal; values go in `params` (security/sqlcheck.py checks callers).
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def issue(
    conn: Conn, *, key: bytes, binding: Binding, customer_id: str, now: datetime, ttl_s: int, max_attempts: int
) -> IssuedChallenge:
    """Create the transfer's challenge once; a second call returns the first one without a code."""
    code = generate_code()
    expires_at = now + timedelta(seconds=ttl_s)
    row = _one(
        conn,
        """
            INSERT INTO otp_challenges
                (transfer_id, customer_id, code_hash, expires_at, attempts_left, state, created_at)
            VALUES (%(transfer_id)s, %(customer_id)s, %(code_hash)s, %(expires_at)s, %(attempts)s, 'pending', %(now)s)
            ON CONFLICT (transfer_id) DO NOTHING
            RETURNING transfer_id
            """,
        {
            "transfer_id": binding.transfer_id,
            "customer_id": customer_id,
            "code_hash": code_hash(key, binding, code),
            "expires_at": expires_at,
            "attempts": max_attempts,
            "now": now,
        },
    )
    if row is not None:
        return IssuedChallenge(code=code, expires_at=expires_at, attempts_left=max_attempts)
    existing = _one(
        conn,
        "SELECT expires_at, attempts_left FROM otp_challenges WHERE transfer_id = %(t)s",
        {"t": binding.transfer_id},
    )
    assert existing is not None  # the insert conflicted on it
    return IssuedChallenge(code=None, expires_at=existing["expires_at"], attempts_left=existing["attempts_left"])


def check(conn: Conn, *, key: bytes, binding: Binding, submission_id: str, code: str, now: datetime) -> CheckResult:
    """Check one submitted code; call inside a transaction (the row lock is held to commit)."""
    # The challenge row lock comes first: it serialises concurrent checks of one transfer,
    # including two deliveries of the same submission.
    challenge = _one(
        conn,
        "SELECT customer_id, code_hash, expires_at, attempts_left, state FROM otp_challenges "
        "WHERE transfer_id = %(t)s FOR UPDATE",
        {"t": binding.transfer_id},
    )
    if challenge is None:
        return CheckResult("not_found", 0)
    seen = recorded_outcome(conn, transfer_id=binding.transfer_id, submission_id=submission_id)
    if seen is not None:
        return seen

    attempts_left = int(challenge["attempts_left"])
    if challenge["state"] == OtpChallengeState.USED:
        # Single use, enforced here too: a new submission of the spent code is not accepted
        # again (a retry of the accepting submission got its answer from `seen` above).
        outcome = OtpOutcome.NOT_PENDING
    elif challenge["state"] in (OtpChallengeState.LOCKED, OtpChallengeState.EXPIRED):
        outcome = OtpOutcome(challenge["state"])
    elif now >= challenge["expires_at"]:
        outcome = OtpOutcome.EXPIRED
        _set_state(conn, binding.transfer_id, OtpChallengeState.EXPIRED, attempts_left)
    elif _recent_failures(conn, str(challenge["customer_id"]), now) >= CUSTOMER_FAILURES_PER_HOUR:
        outcome = OtpOutcome.THROTTLED
    elif matches(key, binding, code, challenge["code_hash"]):
        outcome = OtpOutcome.ACCEPTED
        _set_state(conn, binding.transfer_id, OtpChallengeState.USED, attempts_left)
    else:
        attempts_left -= 1
        outcome = OtpOutcome.LOCKED if attempts_left <= 0 else OtpOutcome.INVALID
        _set_state(
            conn,
            binding.transfer_id,
            OtpChallengeState.LOCKED if attempts_left <= 0 else OtpChallengeState.PENDING,
            attempts_left,
        )
        conn.execute(
            "INSERT INTO otp_failures (customer_id, transfer_id, failed_at) VALUES (%(c)s, %(t)s, %(now)s)",
            {"c": challenge["customer_id"], "t": binding.transfer_id, "now": now},
        )

    conn.execute(
        "INSERT INTO otp_attempts (transfer_id, submission_id, outcome, attempts_left, created_at) "
        "VALUES (%(t)s, %(s)s, %(o)s, %(a)s, %(now)s)",
        {"t": binding.transfer_id, "s": submission_id, "o": outcome, "a": attempts_left, "now": now},
    )
    return CheckResult(outcome, attempts_left)


def recorded_outcome(conn: Conn, *, transfer_id: str, submission_id: str) -> CheckResult | None:
    """The outcome `check` recorded for this submission, if it checked it (`replayed`)."""
    seen = _one(
        conn,
        "SELECT outcome, attempts_left FROM otp_attempts WHERE transfer_id = %(t)s AND submission_id = %(s)s",
        {"t": transfer_id, "s": submission_id},
    )
    return None if seen is None else CheckResult(seen["outcome"], seen["attempts_left"], replayed=True)


def _set_state(conn: Conn, transfer_id: str, state: str, attempts_left: int) -> None:
    conn.execute(
        "UPDATE otp_challenges SET state = %(s)s, attempts_left = %(a)s WHERE transfer_id = %(t)s",
        {"s": state, "a": attempts_left, "t": transfer_id},
    )


def _recent_failures(conn: Conn, customer_id: str, now: datetime) -> int:
    # The challenge row lock serialises one transfer's checks, not two transfers of one
    # customer checked at once (on two workers): without this lock both could count 99 and
    # both record a failure. Held to commit, so the count and the failure it leads to are one.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%(k)s, 0))", {"k": f"otp-failures:{customer_id}"})
    row = conn.execute(
        "SELECT count(*) FROM otp_failures WHERE customer_id = %(c)s AND failed_at > %(since)s",
        {"c": customer_id, "since": now - timedelta(hours=1)},
    ).fetchone()
    return int(row[0]) if row else 0
