"""The OTP store against a real PostgreSQL: binding, single use, attempts spent once even under
concurrency, the per-customer hourly budget, and only a keyed hash stored."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from ledger.db import make_engine, transaction
from otp import store
from otp.codes import Binding, code_hash, matches

KEY = secrets.token_bytes(32)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=12)
    yield engine
    engine.dispose()


def binding(amount_minor: int = 1_000, payee: str | None = None) -> Binding:
    return Binding(str(uuid.uuid4()), amount_minor, "USD", payee or str(uuid.uuid4()))


def issue(engine: Engine, b: Binding, customer: str | None = None, at: datetime = NOW) -> str:
    with transaction(engine) as conn:
        issued = store.issue(
            conn, key=KEY, binding=b, customer_id=customer or str(uuid.uuid4()), now=at, ttl_s=300, max_attempts=5
        )
    assert issued.code is not None
    return issued.code


def check(
    engine: Engine, b: Binding, code: str, submission: str | None = None, at: datetime = NOW
) -> store.CheckResult:
    with transaction(engine) as conn:
        return store.check(conn, key=KEY, binding=b, submission_id=submission or uuid.uuid4().hex, code=code, now=at)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_the_code_is_bound_to_amount_currency_payee_and_transfer() -> None:
    b = binding()
    stored = code_hash(KEY, b, "123456")
    assert matches(KEY, b, "123456", stored)
    for other in (
        Binding(b.transfer_id, b.amount_minor + 1, b.currency, b.payee_account_id),
        Binding(b.transfer_id, b.amount_minor, "EUR", b.payee_account_id),
        Binding(b.transfer_id, b.amount_minor, b.currency, str(uuid.uuid4())),
        Binding(str(uuid.uuid4()), b.amount_minor, b.currency, b.payee_account_id),
    ):
        assert not matches(KEY, other, "123456", stored)
    assert not matches(secrets.token_bytes(32), b, "123456", stored)


def test_only_a_keyed_hash_is_stored(engine: Engine) -> None:
    b = binding()
    code = issue(engine, b)
    with transaction(engine) as conn:
        row = conn.execute("SELECT otp_challenges::text FROM otp_challenges WHERE transfer_id = %s", (b.transfer_id,))
        text = row.fetchone()[0]  # type: ignore[index]
    assert code not in text


def test_second_issue_returns_no_new_code(engine: Engine) -> None:
    b = binding()
    issue(engine, b)
    with transaction(engine) as conn:
        again = store.issue(conn, key=KEY, binding=b, customer_id=str(uuid.uuid4()), now=NOW, ttl_s=300, max_attempts=5)
    assert again.code is None


def test_a_spent_code_is_not_accepted_again(engine: Engine) -> None:
    b = binding()
    code = issue(engine, b)
    first = check(engine, b, code, "sub-1")
    assert first.outcome == "accepted"
    assert check(engine, b, code, "sub-1").outcome == "accepted"  # the same submission, retried
    assert check(engine, b, code, "sub-2").outcome == "not_pending"  # a new one


def test_a_retried_submission_costs_one_attempt(engine: Engine) -> None:
    b = binding()
    code = issue(engine, b)
    for attempt in range(4):
        # The first check is real; the retries return its recorded answer, marked as such so
        # the caller does not apply its effects twice.
        assert check(engine, b, wrong(code), "same-submission") == store.CheckResult("invalid", 4, replayed=attempt > 0)
    assert check(engine, b, code).outcome == "accepted"


def test_concurrent_guesses_cannot_spend_more_than_the_attempts(engine: Engine) -> None:
    b = binding()
    code = issue(engine, b)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    guesses = [g for g in (f"{n:06d}" for n in range(100)) if g != code][:10]

    def guess(g: str) -> None:
        barrier.wait()
        outcomes.append(check(engine, b, g).outcome)

    threads = [threading.Thread(target=guess, args=(g,)) for g in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted(["invalid"] * 4 + ["locked"] * 6)
    # Locked: even the right code is refused now.
    assert check(engine, b, code).outcome == "locked"


def test_expired_code_is_refused(engine: Engine) -> None:
    b = binding()
    code = issue(engine, b)
    assert check(engine, b, code, at=NOW + timedelta(seconds=300)).outcome == "expired"
    assert check(engine, b, code).outcome == "expired"


def test_hourly_failure_budget_per_customer_spans_transfers(engine: Engine) -> None:
    customer = str(uuid.uuid4())
    spent = 0
    while spent < store.CUSTOMER_FAILURES_PER_HOUR:
        b = binding()
        code = issue(engine, b, customer)
        for _ in range(4):
            assert check(engine, b, wrong(code)).outcome == "invalid"
            spent += 1
            if spent == store.CUSTOMER_FAILURES_PER_HOUR:
                break
    fresh = binding()
    code = issue(engine, fresh, customer)
    assert check(engine, fresh, code).outcome == "throttled"  # even the right code, for now
    later = NOW + timedelta(hours=1, seconds=1)
    after_an_hour = binding()
    code = issue(engine, after_an_hour, customer, at=later)
    assert check(engine, after_an_hour, code, at=later).outcome == "accepted"
