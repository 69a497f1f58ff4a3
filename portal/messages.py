"""What people read when the API refuses something: one table from problem `code` to a sentence.

The API's own `detail` is written for developers; these are written for customers and staff.
A code missing here falls back to the API's detail, so a new refusal still says something.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ledger.states import TransferStatus as S
from portal.format import format_money

PROBLEM_MESSAGES: Final[Mapping[str, str]] = {
    # sign-up and login
    "email_taken": "An account with this e-mail address already exists. Log in instead, or use another address.",
    "validation_error": "Some fields are missing or not valid. Check the form and try again.",
    "invalid_credentials": "The e-mail address, password or code is not correct.",
    "mfa_required": "Enter the code from your authenticator app (or a recovery code), with your password again.",
    "mfa_enrolment_required": "Set up two-factor authentication first (Security).",
    "invalid_totp": "That code is not correct (or was already used). Enter the code your app shows now.",
    "totp_already_enabled": "Two-factor authentication is already on.",
    "totp_not_enabled": "Two-factor authentication is not on.",
    "totp_not_pending": "Start the set-up again: no authenticator app is waiting to be confirmed.",
    "too_many_attempts": "Too many failed logins. Wait a few minutes before trying again.",
    "unauthorized": "Your session has ended. Please log in again.",
    "forbidden": "Your role does not allow this action.",
    # accounts
    "unsupported_currency": "We do not offer accounts in that currency.",
    "account_not_found": "That account does not exist, or you cannot use it. Check the account number.",
    "account_frozen": "The account is frozen, so no money can move in or out of it. Contact support.",
    "account_closed": "The account is closed.",
    "account_not_active": "The account is not active.",
    "illegal_transition": "The account cannot change to that status.",
    "precondition_required": "The page did not say which version of the account it showed. Reload and try again.",
    "version_conflict": "Someone else changed this account since you loaded the page — reload to see it as it is now.",
    "customer_not_found": "That customer does not exist.",
    # transfers
    "insufficient_funds": "Not enough available money in the account for this transfer.",
    "limit_exceeded": "This transfer would pass one of your limits. See what is left today on your accounts page.",
    "invalid_limits": "Those limits are not valid: whole numbers of minor units (or counts), one line per currency.",
    "same_account": "You cannot send money to the account it comes from. Choose another payee account.",
    "invalid_amount": "Enter an amount greater than zero.",
    "currency_mismatch": "The currency must be the one of your account or the one of the payee's account.",
    "transfer_not_found": "That transfer does not exist.",
    "transfer_refused": "The transfer was refused.",
    "invalid_otp": "That code is not correct.",
    "otp_not_pending": "This transfer no longer waits for a code (it expired, was cancelled or was already confirmed).",
    "otp_throttled": "Too many wrong codes in the last hour. Try again later.",
    "not_cancellable": "Only a transfer that is still waiting for its code can be cancelled.",
    "unsupported_pair": "We cannot convert between these two currencies.",
    "quote_unavailable": "No exchange rate is available right now. Try again in a moment.",
    "quote_required": "An exchange rate is needed for this transfer. Try again in a moment.",
    "invalid_rate": "That exchange rate is not valid.",
    # idempotency (a double submit or a stale form)
    "idempotency_key_missing": "The form was incomplete. Reload the page and try again.",
    "idempotency_key_reused": "This form was already used for a different request. Reload the page and try again.",
    "idempotency_key_in_flight": "This request is already being processed. Wait a moment, then check its status.",
    # ops
    "not_in_review": "The transfer is no longer waiting for a review decision.",
    "not_reversible": "This transfer cannot be reversed (only a posted transfer can, once).",
    "four_eyes_required": "A second staff member must approve this: you cannot approve a reversal you requested.",
    "reversal_not_found": "That reversal does not exist.",
    "reversal_not_pending": "This reversal is no longer waiting for approval (it was already approved or rejected).",
    "reversal_would_overdraw": "The payee no longer has all of the money to give back. Tick “cover the shortfall "
    "from settlement” to approve anyway.",
    "not_pending": "This request is no longer waiting for approval.",
    "reconciliation_run_not_found": "That reconciliation run does not exist.",
    "invalid_cursor": "That page of results is no longer available. Start from the first page.",
    # the service itself
    "workflow_timeout": "The transfer service is slow to answer. Your request is safe to retry in a moment.",
    "temporal_unavailable": "The transfer service is unavailable right now. Try again in a moment.",
    "internal_error": "Something went wrong on our side. Nothing was done twice; try again.",
    "not_found": "That page does not exist.",
}

FAILURE_REASONS: Final[Mapping[str, str]] = {
    "insufficient_funds": "there was not enough money in the account",
    "otp_locked": "too many wrong codes were entered (otp_locked); the money was released",
    "otp_expired": "the code was not entered in time",
    "quote_unavailable": "no exchange rate was available",
    "account_frozen": "an account involved is frozen",
    "rejected": "the operations team rejected it",
    "risk_blocked": "our fraud checks stopped it; the money was released",
    "limit_exceeded": "it would have passed one of your limits",
}

STATUS_LABELS: Final[Mapping[str, str]] = {
    S.PENDING_OTP: "Waiting for your code",
    S.PROCESSING: "Processing",
    S.IN_REVIEW: "Being reviewed",
    S.POSTED: "Posted",
    S.FAILED: "Failed",
    S.CANCELLED: "Cancelled",
    S.EXPIRED: "Expired",
    S.REJECTED: "Rejected",
    S.REVERSED: "Reversed",
}

# Statuses a transfer never leaves (for the status page's poller): `posted` may later become
# `reversed`, but only by an operator's action, not while the customer watches.
TERMINAL_STATUSES: Final = frozenset({S.POSTED, S.FAILED, S.CANCELLED, S.EXPIRED, S.REJECTED, S.REVERSED})


def problem_message(code: str, body: Mapping[str, Any] | None = None) -> str:
    """A sentence for a problem document (with `attempts_left` spelled out when present)."""
    body = body or {}
    message = PROBLEM_MESSAGES.get(code) or str(body.get("detail") or body.get("title") or "The request was refused.")
    attempts = body.get("attempts_left")
    if code == "reversal_would_overdraw" and {"available_minor", "required_minor", "currency"} <= body.keys():
        currency = str(body["currency"])
        return (
            f"{message} It holds {format_money(int(body['available_minor']), currency)} of the "
            f"{format_money(int(body['required_minor']), currency)} to take back."
        )
    if code == "invalid_otp" and isinstance(attempts, int):
        if attempts <= 0:
            return "That code is not correct and no attempts are left: the transfer failed (otp_locked)."
        return f"{message} {attempts} attempt{'s' if attempts != 1 else ''} left."
    return message


def failure_message(reason: str | None) -> str:
    if not reason:
        return ""
    return FAILURE_REASONS.get(reason, reason.replace("_", " "))


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())
