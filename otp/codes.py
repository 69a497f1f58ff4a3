"""Pure OTP logic: generate a code, bind it to one transfer, hash it, check it.

The hash is an HMAC over the code *and* the transfer's amount, currency and payee, so a code
authorises exactly that payment (PSD2 dynamic linking): the same six digits checked against a
different amount or payee simply do not match. Only the keyed hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

CODE_DIGITS = 6


@dataclass(frozen=True)
class Binding:
    """What the code authorises."""

    transfer_id: str  # the challenge's key: a transfer's, a payee's or a standing order's id
    amount_minor: int
    currency: str
    payee_account_id: str
    # What else the code is bound to besides a payment: a payee's name, a standing order's
    # frequency. Empty for a transfer, whose message (so every stored hash) is unchanged.
    context: str = ""

    def message(self, code: str) -> bytes:
        # Fields are joined with a separator that cannot occur in any of them (the API refuses
        # control characters in names).
        fields = [self.transfer_id, str(self.amount_minor), self.currency, self.payee_account_id]
        if self.context:
            fields.append(self.context)
        return "\x1f".join([*fields, code]).encode()


def generate_code() -> str:
    """Six uniformly random digits from the OS CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, binding: Binding, code: str) -> str:
    return hmac.new(key, binding.message(code), hashlib.sha256).hexdigest()


def is_well_formed(code: str) -> bool:
    return len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


def matches(key: bytes, binding: Binding, code: str, stored_hash: str) -> bool:
    """Constant-time comparison of the submitted code's hash with the stored one."""
    candidate = code_hash(key, binding, code if is_well_formed(code) else "x" * CODE_DIGITS)
    return hmac.compare_digest(candidate, stored_hash) and is_well_formed(code)
