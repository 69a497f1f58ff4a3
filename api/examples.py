"""Examples for /openapi.json: hand-written ones for the main bodies, and a small generator that
completes them (or makes one) from a JSON schema, so a new route has valid examples from its
first day and a field added to a model never leaves its example stale.

Hand-written values win; a field they do not name gets a generated value; a field they name
that the schema no longer has is dropped. tests/api/test_contract.py validates every example
against its schema.
"""

from __future__ import annotations

import re
from typing import Any, Final

_ACCOUNT_ID: Final = "0193a5e2-7c4b-7d10-9e6f-5b2a1c3d4e5f"
_OTHER_ACCOUNT_ID: Final = "0193a5e2-7c4b-7d10-9e6f-5b2a1c3d4e60"
_CUSTOMER_ID: Final = "0193a5e1-0b2c-7a3d-8e4f-6a7b8c9d0e1f"
_TRANSFER_ID: Final = "0193a5e3-1d2e-7f30-8a41-b2c3d4e5f607"
_AT: Final = "2026-12-03T10:15:30Z"

_BALANCE: Final = {
    "account_id": _ACCOUNT_ID,
    "currency": "USD",
    "ledger_minor": 125000,
    "available_minor": 115000,
    "held_minor": 10000,
    "as_of": _AT,
}
_ACCOUNT: Final = {
    "id": _ACCOUNT_ID,
    "customer_id": _CUSTOMER_ID,
    "currency": "USD",
    "label": "main",
    "status": "active",
    "balance": _BALANCE,
    "version": 1,
    "created_at": _AT,
}
_TRANSFER: Final = {
    "id": _TRANSFER_ID,
    "status": "pending_otp",
    "source_account_id": _ACCOUNT_ID,
    "destination_account_id": _OTHER_ACCOUNT_ID,
    "amount_minor": 10000,
    "currency": "USD",
    "source_amount_minor": 10000,
    "destination_amount_minor": 10000,
    "fx": None,
    "otp": {"channel": "in_app", "expires_at": "2026-12-03T10:20:30Z", "attempts_left": 5},
    "failure_reason": None,
    "legs": [],
    "workflow_id": f"transfer-{_TRANSFER_ID}",
    "created_at": _AT,
    "updated_at": _AT,
}

# Component schema name -> example (completed from the schema by `attach`).
HAND_WRITTEN: Final[dict[str, dict[str, Any]]] = {
    "SignupIn": {"email": "ada@example.com", "password": "correct-horse-battery", "full_name": "Ada Lovelace"},
    "Customer": {
        "customer_id": _CUSTOMER_ID,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "created_at": _AT,
    },
    "Token": {"access_token": "lf_c_3q2Z8xV0b9...", "token_type": "bearer", "expires_in": 3600},
    "StaffIn": {"email": "olga@ledgerflow.local", "password": "correct-horse-battery", "role": "operator"},
    "AccountIn": {"currency": "USD", "label": "main"},
    "Account": _ACCOUNT,
    "AccountPatch": {"status": "frozen"},
    "Balance": _BALANCE,
    "Entry": {
        "id": "0193a5e4-2e3f-7041-9b52-c3d4e5f60718",
        "transaction_id": "0193a5e4-2e3f-7041-9b52-c3d4e5f60719",
        "transfer_id": _TRANSFER_ID,
        "direction": "debit",
        "amount_minor": 10000,
        "currency": "USD",
        "balance_after_minor": 115000,
        "posted_at": _AT,
        "description": "Rent",
    },
    "TransferIn": {
        "source_account_id": _ACCOUNT_ID,
        "destination_account_id": _OTHER_ACCOUNT_ID,
        # Exactly one destination (the schema's oneOf): the other two stated as absent.
        "destination_account_number": None,
        "payee_id": None,
        "amount_minor": 10000,
        "currency": "USD",
        "description": "Rent",
    },
    "Transfer": _TRANSFER,
    "OtpIn": {"code": "492817"},
    "ReviewIn": {"reason": "Known counterparty"},
    "DepositIn": {
        "account_id": _ACCOUNT_ID,
        "amount_minor": 125000,
        "currency": "USD",
        "external_reference": "wire-2026-12-03-0042",
    },
    "Deposit": {
        "transaction_id": "0193a5e4-2e3f-7041-9b52-c3d4e5f6071a",
        "account_id": _ACCOUNT_ID,
        "amount_minor": 125000,
        "currency": "USD",
        "posted_at": _AT,
    },
    "Notification": {
        "id": "0193a5e5-3f40-7152-8c63-d4e5f6071829",
        "channel": "in_app",
        "subject": "Your code",
        "body": "Code 492817 approves USD 100.00 to account ...4e60.",
        "transfer_id": _TRANSFER_ID,
        "created_at": _AT,
    },
    "Quote": {
        "source_currency": "USD",
        "destination_currency": "EUR",
        "rate": "0.9182",
        "spread_bps": 25,
        "source_amount_minor": 10000,
        "spread_minor": 23,
        "destination_amount_minor": 9161,
        "indicative": True,
        "as_of": _AT,
    },
    "FxRateIn": {"rate": "0.9182", "spread_bps": 25},
    "FxRate": {
        "base": "USD",
        "quote": "EUR",
        "rate": "0.9182",
        "spread_bps": 25,
        "updated_at": _AT,
        "updated_by": "admin@ledgerflow.local",
        "version": 3,
    },
}

# Members a problem of this code carries besides the standard ones.
PROBLEM_EXTRAS: Final[dict[str, dict[str, Any]]] = {
    "invalid_otp": {"attempts_left": 4},
    "validation_error": {"errors": [{"loc": ["body", "currency"], "msg": "Field required"}]},
    "version_conflict": {"current_version": 4},
    "service_unavailable": {"part": "postgres"},
    "payload_too_large": {"max_bytes": 65536},
}

_UUID: Final = "0193a5e6-4051-7263-9d74-e5f60718293a"
_STRING_CANDIDATES: Final = ("USD", "0.9182", "ada@example.com", "example", "1")


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        seen += 1
    return schema


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        return _UUID
    if fmt == "date-time":
        return _AT
    if fmt == "date":
        return _AT[:10]
    if fmt == "email":
        return "ada@example.com"
    pattern = schema.get("pattern")
    literal = re.fullmatch(r"\^([A-Za-z0-9_.-]+)\$", pattern or "")
    if literal is not None:
        return literal.group(1)
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 64))
    for candidate in _STRING_CANDIDATES:
        if low <= len(candidate) <= high and (pattern is None or re.search(pattern, candidate)):
            return candidate
    return ("x" * max(low, 1))[: max(high, 1)]


def _integer(schema: dict[str, Any]) -> int:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", 2**31) - 1 if "exclusiveMaximum" in schema else 2**31)
    return int(min(max(1, low), high))


def example_for(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A value valid against `schema` (its own example when it has one)."""
    schema = _resolve(schema, components)
    if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, components).get("type") != "null"]
            return example_for((options or schema[key])[0], components, depth + 1) if depth < 8 else None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_for(part, components, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth >= 8:
            return {}
        return {name: example_for(sub, components, depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [] if depth >= 8 else [example_for(schema.get("items", {}), components, depth + 1)]
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


def _complete(hand: dict[str, Any], schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The hand-written example with every property of the schema (generated where it names none)."""
    properties: dict[str, Any] = _resolve(schema, components).get("properties", {})
    out: dict[str, Any] = {}
    for name, sub in properties.items():
        out[name] = hand[name] if name in hand else example_for(sub, components, 1)
    return out


def attach(components: dict[str, Any]) -> None:
    """Put an `examples` list on every object component schema (hand-written where we have one)."""
    for name, schema in components.items():
        if "examples" in schema or "example" in schema:
            continue
        if schema.get("type") != "object" and "properties" not in schema:
            continue
        hand = HAND_WRITTEN.get(name, {})
        schema["examples"] = [_complete(hand, schema, components)]
