"""OTP challenges the API issues and checks itself: confirming a payee, approving a standing order.

A transfer's code is checked by its workflow; these have no workflow, so the API runs the same
OTP store (otp/store.py: hashed, bound, 5 tries, TTL, single use, attempts counted once, the
per-customer failure throttle) inside the caller's transaction, and the message goes out
through the one OTP delivery path (otp/delivery.py) in the transaction that issues the code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, TypeVar
from uuid import UUID

from api.problems import Problem
from config.settings import Settings
from ledger.db import Conn
from ledger.states import OtpChallengeState, OtpOutcome
from ledger.uow import UnitOfWork
from otp import store as otp_store
from otp.codes import Binding
from otp.delivery import OtpMessage, SealsText, request_otp_message

ACCEPTED: Final = OtpOutcome.ACCEPTED
T = TypeVar("T")


def issue(
    conn: Conn,
    settings: Settings,
    *,
    binding: Binding,
    customer_id: UUID,
    subject: str,
    body: str,
    sealer: SealsText,
) -> otp_store.IssuedChallenge:
    """Issue the challenge keyed by `binding.transfer_id` and queue its message (one transaction).

    `body` holds otp.delivery.CODE_SLOT where the code goes: the code travels sealed, like a
    transfer's (otp/delivery.py), and the inbox opens it for its owner while it can be used.
    """
    issued = otp_store.issue(
        conn,
        key=settings.otp_key_bytes(),
        binding=binding,
        customer_id=str(customer_id),
        now=datetime.now(UTC),
        ttl_s=settings.otp_ttl_s,
        max_attempts=settings.otp_max_attempts,
    )
    if issued.code is not None:
        message = OtpMessage(
            customer_id=customer_id,
            challenge_ref=binding.transfer_id,
            subject=subject,
            body=body,
            expires_at=issued.expires_at,
        )
        request_otp_message(conn, sealer, message, issued.code, business_id=UUID(binding.transfer_id))
    return issued


def check(conn: Conn, settings: Settings, *, binding: Binding, code: str) -> otp_store.CheckResult:
    """Check one submitted code (its own submission id: each request is one attempt).

    A challenge that is no longer pending (used, locked, expired) answers `not_pending` before
    the store is asked: the store reports `locked` for every later try of a locked challenge,
    which for a transfer never reaches it (its workflow has closed), but would here.
    """
    row = conn.execute(
        "SELECT state FROM otp_challenges WHERE transfer_id = %s FOR UPDATE", (binding.transfer_id,)
    ).fetchone()
    if row is None or row[0] != OtpChallengeState.PENDING:
        return otp_store.CheckResult(OtpOutcome.NOT_PENDING, 0)
    return otp_store.check(
        conn,
        key=settings.otp_key_bytes(),
        binding=binding,
        submission_id=str(uuid.uuid4()),
        code=code,
        now=datetime.now(UTC),
    )


def confirm(
    uow: UnitOfWork, settings: Settings, *, binding: Binding, code: str, what: str, accept: Callable[[], T]
) -> T:
    """Confirm something pending with its code (a payee, a standing order), on `uow` whose
    caller has locked the row and checked it is pending: on an accepted code `accept()` makes
    the change and its result is returned. The unit is committed either way: a wrong code
    still spends its attempt.

    Raises:
        Problem: the refusal for the code's outcome (invalid_otp, otp_not_pending, otp_throttled).
    """
    result = check(uow.conn, settings, binding=binding, code=code)
    accepted = accept() if result.outcome == ACCEPTED else None
    uow.commit()
    if accepted is None:
        raise refusal(result, what)
    return accepted


def not_pending(what: str) -> Problem:
    return refusal(otp_store.CheckResult(OtpOutcome.NOT_PENDING, 0), what)


def refusal(result: otp_store.CheckResult, what: str) -> Problem:
    """The problem for a check that did not accept the code (after its transaction committed,
    so a wrong code's spent attempt stays spent)."""
    if result.outcome == OtpOutcome.INVALID:
        return Problem(
            422, "invalid_otp", "Invalid code", "The code is not correct.", attempts_left=result.attempts_left
        )
    if result.outcome == OtpOutcome.LOCKED:
        return Problem(
            422,
            "invalid_otp",
            "Invalid code",
            f"The code is not correct and no attempts are left: the {what} can no longer be confirmed.",
            attempts_left=0,
        )
    if result.outcome == OtpOutcome.THROTTLED:
        return Problem(
            429,
            "otp_throttled",
            "Too many wrong codes",
            "Too many wrong codes in the last hour; try again later.",
            headers={"Retry-After": "3600"},
        )
    # expired, not_pending (already used), not_found
    return Problem(
        409,
        "otp_not_pending",
        "OTP not pending",
        f"The {what} no longer waits for a code ({result.outcome}).",
        reason=result.outcome,
    )
