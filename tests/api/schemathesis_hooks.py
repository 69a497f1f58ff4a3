"""Checks schemathesis runs on top of its own (loaded by the run's config, `hooks = ...`).

Schemathesis's `positive_data_acceptance` is told that 412 and 422 are answers a valid request
may get: a transfer refused for insufficient funds is a business answer about state the schema
cannot describe. What must never happen is a request the schema calls valid being refused as
*malformed*: that is a schema that does not state what the server enforces (issue #20, ST202).
"""

from __future__ import annotations

from typing import Any

import schemathesis

# Codes that say "your request is malformed", which a schema-valid request must never get.
# (`invalid_amount` is not one: the ledger also answers it for an amount too small to convert.)
MALFORMED_CODES = frozenset({"validation_error", "idempotency_key_missing", "precondition_required"})


@schemathesis.check
def schema_valid_is_well_formed(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422, 428):
        return None
    try:
        code = response.json().get("code")
    except Exception:
        return None
    if code in MALFORMED_CODES:
        raise AssertionError(
            f"A request valid against the schema was refused as malformed ({response.status_code} {code}): "
            f"{response.text[:500]}"
        )
    return None
