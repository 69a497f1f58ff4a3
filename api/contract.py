"""The HTTP contract as data: every problem `code` the API may answer with, and what each route
declares beyond its signature (its business refusal codes, the headers it answers with).

A route declares its refusals in one line, next to its path decorator:

    @router.post("/transfers", status_code=201, response_model=schemas.Transfer)
    @declare("insufficient_funds", "same_account", "account_not_found", location=True)
    async def create_transfer(...): ...

Everything a route's signature already says is derived, not declared again (see
`derived_codes`): a bearer-token dependency adds 401 `unauthorized`, a role check 403
`forbidden`, the `IdempotencyKey` dependency the three idempotency codes and the
`Idempotent-Replayed` header, an `If-Match` parameter 428/412, a `cursor` parameter
`invalid_cursor`, any parameter or body `validation_error`, a body 413 `payload_too_large`.
api/openapi.py reads both when it builds /openapi.json; tests/api/test_contract.py fails for
a route whose code raises a problem code it does not declare.

A new code goes into `CODES` (with its one HTTP status) and into docs/api.md.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts


@dataclass(frozen=True)
class Code:
    status: int
    meaning: str


# Every stable problem `code`, with its one HTTP status. docs/api.md lists the same set (a test
# keeps them in step). 500 `internal_error` is deliberately absent: it is a bug, never a contract.
CODES: Final[dict[str, Code]] = {
    # 400
    "idempotency_key_missing": Code(400, "A money-moving POST without an Idempotency-Key header."),
    "malformed_body": Code(400, "The body cannot be parsed (not JSON, or not the declared media type)."),
    # 401
    "unauthorized": Code(401, "No bearer token, or one that is invalid, expired, revoked or of the other realm."),
    "invalid_credentials": Code(401, "Wrong username or password at a token endpoint."),
    "mfa_required": Code(401, "The principal has two-factor on: the token endpoint needs the `totp` field."),
    # 403
    "forbidden": Code(403, "The staff member's role does not allow this action."),
    "mfa_enrolment_required": Code(403, "Staff (or, by policy, a customer) must enrol a second factor first."),
    "four_eyes_required": Code(403, "A reversal must be approved by someone other than its requester."),
    # 404
    "not_found": Code(404, "No such resource."),
    "account_not_found": Code(404, "No such account (or not the caller's)."),
    "transfer_not_found": Code(404, "No such transfer (or not the caller's)."),
    "customer_not_found": Code(404, "No such customer."),
    "notification_not_found": Code(404, "No such inbox message (or not the caller's)."),
    "payee_not_found": Code(404, "No such payee (or not the caller's)."),
    "standing_order_not_found": Code(404, "No such standing order (or not the caller's)."),
    "rule_not_found": Code(404, "No such risk rule."),
    "limit_set_not_found": Code(404, "No limits are set for this customer."),
    "reconciliation_run_not_found": Code(404, "No such reconciliation run."),
    "reversal_not_found": Code(404, "No such reversal."),
    "statement_not_found": Code(404, "No such statement import."),
    # 409
    "email_taken": Code(409, "An account with this e-mail already exists."),
    "idempotency_key_in_flight": Code(409, "A request with this Idempotency-Key is still being processed."),
    "otp_not_pending": Code(409, "The transfer no longer waits for a code (expired, cancelled, locked, approved)."),
    "not_cancellable": Code(409, "Only a transfer waiting for its code can be cancelled."),
    "not_in_review": Code(409, "The transfer is not waiting for a review decision."),
    "not_reversible": Code(409, "Only a posted transfer can be reversed, once."),
    "reversal_not_pending": Code(409, "The reversal was already approved or rejected."),
    "reversal_would_overdraw": Code(409, "Reversing would take the destination account below zero."),
    "illegal_transition": Code(409, "The account cannot move to that status from its current one."),
    "invalid_state": Code(409, "The standing order cannot be paused, resumed or cancelled from its current status."),
    "totp_already_enabled": Code(409, "Two-factor is already on: disable it first to enrol again."),
    "totp_not_enabled": Code(409, "Two-factor is not on for this principal."),
    "totp_not_pending": Code(409, "There is no enrolment waiting for its first code."),
    # 412, 413, 428
    "version_conflict": Code(412, "If-Match names a version that is not the current one."),
    "payload_too_large": Code(413, "The request body is over this route's size limit."),
    "precondition_required": Code(428, "An edit without If-Match."),
    # 422
    "validation_error": Code(422, "A field is missing or malformed (`errors` names each one)."),
    "invalid_totp": Code(422, "The two-factor code (or recovery code) is wrong or already used."),
    "invalid_destination": Code(
        422, "Not exactly one of destination_account_id, destination_account_number, payee_id."
    ),
    "invalid_account_number": Code(422, "The account number's check digits are wrong (caught before any lookup)."),
    "payee_not_trusted": Code(422, "The payee has not been confirmed with its code."),
    "standing_order_not_active": Code(
        422, "The standing order does not authorise this run (paused, cancelled, changed)."
    ),
    "limit_exceeded": Code(
        422, "Over a limit: `limit` names it, `remaining_minor` or `remaining_count` says what is left."
    ),
    "invalid_limits": Code(422, "A limit set is malformed (a currency twice, a negative limit)."),
    "invalid_rule": Code(422, "A risk rule's action or parameters are not valid for that rule."),
    "invalid_amount": Code(422, "amount_minor is not a positive integer of minor units."),
    "insufficient_funds": Code(422, "The source's available balance does not cover the amount."),
    "same_account": Code(422, "Source and destination are the same account."),
    "currency_mismatch": Code(422, "The currency is not the account's (or neither side's, for a transfer)."),
    "account_frozen": Code(422, "The account is frozen."),
    "account_closed": Code(422, "The account is closed."),
    "account_not_active": Code(422, "The account is not active."),
    "unsupported_currency": Code(422, "A currency this ledger does not keep."),
    "unsupported_pair": Code(422, "No rate is quoted for this currency pair."),
    "invalid_rate": Code(422, "An FX rate that is not a positive decimal."),
    "invalid_cursor": Code(422, "The cursor is not one this list handed out."),
    "idempotency_key_reused": Code(422, "The Idempotency-Key was used before with a different request."),
    "invalid_otp": Code(422, "The code is not correct (`attempts_left` says how many tries remain)."),
    "transfer_refused": Code(422, "The ledger refused the transfer for a reason not listed here."),
    "invalid_payload": Code(422, "A codec payload field is not base64."),
    "undecodable_payload": Code(422, "A codec payload cannot be decrypted with any key."),
    "invalid_period": Code(422, "A statement period whose start is not before its end."),
    "invalid_statement": Code(422, "A bank statement file that cannot be read (`line` names where)."),
    "not_a_settlement_account": Code(422, "Statements are imported for settlement accounts only."),
    # 429
    "rate_limited": Code(429, "Too many requests of this kind; see Retry-After."),
    "too_many_attempts": Code(429, "Too many failed logins from here; see Retry-After."),
    "otp_throttled": Code(429, "Too many wrong codes in the last hour; see Retry-After."),
    # 503: every route may answer these while a part of the system is down.
    "service_unavailable": Code(503, "PostgreSQL or Temporal is unreachable (`part` names it); see Retry-After."),
    "temporal_unavailable": Code(503, "The workflow engine is not reachable."),
    "workflow_timeout": Code(503, "The workflow did not answer in time; the request can be retried."),
    "not_ready": Code(503, "/readyz: a part of the stack is not reachable."),
}

# Answered by any route while a dependency is down (api/problems.py, api/runtime.py).
UNAVAILABLE_CODES: Final = ("service_unavailable", "temporal_unavailable", "workflow_timeout")
# Codes no route declares: a 500 is a bug, and 404 not_found / 405 are about paths, not operations.
UNDECLARED_CODES: Final = frozenset({"internal_error", "not_found", "method_not_allowed"})


@dataclass(frozen=True)
class Declaration:
    """What a route declares beyond its signature."""

    codes: tuple[str, ...] = ()
    etag: bool = False  # the 2xx answer carries ETag: "<version>"
    location: bool = False  # the 2xx answer carries Location of the created resource
    retry_after: bool = False  # a 2xx answer may carry Retry-After (none today)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


_ATTR: Final = "__ledgerflow_contract__"
F = TypeVar("F", bound=Callable[..., Any])


def declare(
    *codes: str,
    etag: bool = False,
    location: bool = False,
    links: dict[str, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Declare a route's refusal codes and response headers (read when the OpenAPI is built).

    `links`: OpenAPI links from this operation's success answer, `{name: {"operationId": ...,
    "parameters": {...}, "requestBody": {...}}}`; they drive schemathesis's stateful phase.

    Raises:
        KeyError: a code that is not in `CODES` (add it there, with its status, first).
    """
    unknown = [c for c in codes if c not in CODES]
    if unknown:
        raise KeyError(f"undeclared problem codes {unknown}: add them to api.contract.CODES")

    def mark(fn: F) -> F:
        setattr(fn, _ATTR, Declaration(tuple(codes), etag=etag, location=location, links=dict(links or {})))
        return fn

    return mark


# A route as FastAPI exposes it once included (fastapi.routing.RouteContext: path_format,
# methods, endpoint, dependant, body_field of the APIRoute under its router's prefix).
Route = Any


def api_routes(app: FastAPI) -> Iterator[Route]:
    """Every API route of the app that the OpenAPI documents."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context


def declaration_of(route: Route) -> Declaration:
    found = getattr(route.endpoint, _ATTR, None)
    return found if isinstance(found, Declaration) else Declaration()


# -- what a route's signature says ------------------------------------------------------------


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def dependency_calls(route: Route) -> list[Callable[..., Any]]:
    return [d.call for d in _dependants(route.dependant) if d.call is not None and d.call is not route.endpoint]


def header_params(route: Route) -> set[str]:
    return {p.alias.lower() for d in _dependants(route.dependant) for p in d.header_params}


def _names(route: Route) -> set[str]:
    return {getattr(c, "__qualname__", "") for c in dependency_calls(route)}


def requires_idempotency_key(route: Route) -> bool:
    return "idempotency_key" in _names(route)


def has_if_match(route: Route) -> bool:
    return "if-match" in header_params(route)


def derived_codes(route: Route) -> set[str]:
    """The codes a route's signature implies (dependencies, parameters, body)."""
    names = _names(route)
    headers = header_params(route)
    codes: set[str] = set(UNAVAILABLE_CODES)
    if names & {
        "current_customer",
        "current_staff",
        "current_customer_enrolling",
        "current_staff_enrolling",
        "reject_foreign_token",
    }:
        codes.add("unauthorized")
    # Only an enrolled principal passes these (staff always; customers when policy says so).
    if names & {"current_customer", "current_staff"}:
        codes.add("mfa_enrolment_required")
    if any(n.startswith("require_roles.") for n in names):
        codes.add("forbidden")
    if "idempotency-key" in headers:
        codes |= {"idempotency_key_reused", "idempotency_key_in_flight"}
        if "idempotency_key" in names:
            codes.add("idempotency_key_missing")
    if "if-match" in headers:
        codes |= {"precondition_required", "version_conflict"}
    if names & {"limit_transfer_creation", "limit_otp_submission"}:
        codes.add("rate_limited")
    flat = list(_dependants(route.dependant))
    params = [p for d in flat for p in (*d.path_params, *d.query_params, *d.header_params)]
    if params or route.body_field is not None:
        codes.add("validation_error")
    if any(p.alias == "cursor" for d in flat for p in d.query_params):
        codes.add("invalid_cursor")
    if route.body_field is not None or "POST" in route.methods or "PUT" in route.methods or "PATCH" in route.methods:
        codes.add("payload_too_large")
    if route.body_field is not None:
        codes.add("malformed_body")
    if route.body_field is not None and "amount_minor" in _body_fields(route):
        codes.add("invalid_amount")
    return codes


def _body_fields(route: Route) -> set[str]:
    if route.body_field is None:
        return set()
    annotation = route.body_field.field_info.annotation
    fields = getattr(annotation, "model_fields", None)
    return set(fields) if isinstance(fields, dict) else set()


def codes_of(route: Route) -> set[str]:
    """Every code the OpenAPI documents for this route: derived plus declared."""
    return derived_codes(route) | set(declaration_of(route).codes)


def translator(fn: F) -> F:
    """Mark a helper that turns domain errors into problems (api.errors.ledger_errors): the codes
    it can produce depend on the domain call it wraps, so the static scan does not attribute
    them all to every route that uses it; routes declare the ones their domain calls raise."""
    setattr(fn, _TRANSLATOR, True)
    return fn


_TRANSLATOR: Final = "__ledgerflow_translator__"


# -- what a route's code says (the static scan the contract test runs) ---------------------------

_PACKAGES: Final = ("api.",)


def _code_arg(node: ast.Call, position: int, keyword: str) -> str | None:
    for kw in node.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    if len(node.args) > position:
        arg = node.args[position]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _callee_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, types.ModuleType):
            return getattr(base, node.attr, None)
    return None


def raised_codes(
    fn: Callable[..., Any], _seen: set[Any] | None = None, packages: tuple[str, ...] = _PACKAGES
) -> set[str]:
    """Problem codes that `fn`, and the functions of the api package it calls, raise literally:
    `Problem(status, "code", ...)`, `problem_response(status, "code", ...)`, `refusal("code")`,
    `not_found(what, "code")`. Codes that travel inside domain errors (ledger_errors(),
    recon_errors()) are not visible here: routes declare those from the domain's docstrings."""
    seen = _seen if _seen is not None else set()
    if getattr(fn, _TRANSLATOR, False):
        return set()
    fn = inspect.unwrap(fn)
    if fn in seen or not inspect.isfunction(fn) or not fn.__module__.startswith(packages):
        return set()
    seen.add(fn)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return set()
    scope: dict[str, Any] = dict(fn.__globals__)
    if fn.__closure__:
        scope.update(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__), strict=True))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _callee_name(node)
        code: str | None = None
        if name in ("Problem", "problem_response"):
            code = _code_arg(node, 1, "code")
        elif name == "refusal":
            code = _code_arg(node, 0, "code")
        elif name == "not_found":
            code = _code_arg(node, 1, "code") or "not_found"
        if code is not None:
            found.add(code)
        target = _resolve(node.func, scope)
        if inspect.isfunction(target):
            found |= raised_codes(target, seen, packages)
    return found


def route_raised_codes(route: Route, packages: tuple[str, ...] = _PACKAGES) -> set[str]:
    """The literal codes of a route's endpoint and of its dependencies (functions of `packages`)."""
    seen: set[Any] = set()
    found = raised_codes(route.endpoint, seen, packages)
    for call in dependency_calls(route):
        found |= raised_codes(call, seen, packages)
    return found
