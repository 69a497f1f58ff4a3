"""/openapi.json that states what the server enforces (built from the routes and api/contract.py).

On top of FastAPI's document:
- every error answer is `application/problem+json`, one response per status, whose `code` is
  an enum of exactly the codes that operation may answer with (derived plus declared), with
  an example of each; no `default` response, so an undocumented status is a contract failure;
- `Idempotency-Key` is a required header where the server refuses a request without it,
  `If-Match` where an edit needs it; `ETag`, `Location`, `Idempotent-Replayed`,
  `WWW-Authenticate` and `Retry-After` are declared on the answers that carry them;
- every request body and every success answer has an example (hand-written ones from
  api/examples.py, completed from the schema where a field has none);
- declared links (create account -> deposit -> transfer -> OTP -> read) for stateful testing;
- each operation names its realm: `security` (CustomerToken or StaffToken, the two OAuth2
  password flows) and `x-realm`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import contract, examples, idempotency
from api.schemas import ProblemDoc

PROBLEM_JSON: Final = "application/problem+json"
_HTTP_TITLES: Final = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    422: "Request refused",
    428: "Precondition required",
    429: "Too many requests",
    503: "Service unavailable",
}
_HEADER_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}, "example": "Bearer"},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}, "example": "1"},
    "ETag": {
        "description": 'The resource\'s version, `"<version>"`; send it back as If-Match to edit it.',
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
        "example": '"1"',
    },
    "Location": {"description": "Path of the created resource.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored answer to an earlier request with the same key.",
        "schema": {"type": "string", "enum": ["true"]},
        "example": "true",
    },
}
# Headers a problem answer always carries, per status.
_PROBLEM_HEADERS: Final = {401: ("WWW-Authenticate", True), 429: ("Retry-After", True), 503: ("Retry-After", False)}
_REALMS: Final = {"CustomerToken": "customer", "StaffToken": "staff"}


def _header(name: str, *, required: bool) -> dict[str, Any]:
    return {**_HEADER_SCHEMAS[name], "required": required}


def _problem_schema(status: int, codes: list[str]) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Problem"},
            {
                "type": "object",
                "properties": {
                    "status": {"type": "integer", "enum": [status]},
                    "code": {"type": "string", "enum": codes},
                },
            },
        ]
    }


def _problem_example(status: int, code: str) -> dict[str, Any]:
    value: dict[str, Any] = {
        "type": f"https://ledgerflow.dev/problems/{code}",
        "title": _HTTP_TITLES.get(status, "Error"),
        "status": status,
        "detail": contract.CODES[code].meaning,
        "code": code,
    }
    value.update(examples.PROBLEM_EXTRAS.get(code, {}))
    return {"summary": contract.CODES[code].meaning, "value": value}


def _error_responses(codes: set[str]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in sorted(codes):
        by_status.setdefault(contract.CODES[code].status, []).append(code)
    out: dict[str, Any] = {}
    for status, listed in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": f"{_HTTP_TITLES.get(status, 'Error')}: " + ", ".join(f"`{c}`" for c in listed),
            "content": {
                PROBLEM_JSON: {
                    "schema": _problem_schema(status, listed),
                    "examples": {c: _problem_example(status, c) for c in listed},
                }
            },
        }
        if status in _PROBLEM_HEADERS:
            name, required = _PROBLEM_HEADERS[status]
            response["headers"] = {name: _header(name, required=required)}
        out[str(status)] = response
    return out


def _operation_ids(schema: dict[str, Any]) -> dict[str, str]:
    """'METHOD /path' -> operationId, for links declared by method and path."""
    return {
        f"{method.upper()} {path}": op["operationId"]
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def _links(declared: dict[str, dict[str, Any]], ids: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, link in declared.items():
        target = link["target"]
        if target not in ids:
            raise KeyError(f"link {name} names {target!r}, which is not an operation")
        body = {"operationId": ids[target]}
        body.update({k: v for k, v in link.items() if k != "target"})
        out[name] = body
    return out


def _set_parameter(op: dict[str, Any], name: str, **values: Any) -> None:
    for param in op.get("parameters", []):
        if param.get("in") == "header" and param.get("name", "").lower() == name.lower():
            param.update(values)


def _decorate(op: dict[str, Any], route: contract.Route, ids: dict[str, str], components: dict[str, Any]) -> None:
    declaration = contract.declaration_of(route)
    responses: dict[str, Any] = op["responses"]
    for status in [s for s in responses if s == "default" or (s.isdigit() and int(s) >= 400)]:
        del responses[status]
    success = next((s for s in responses if s.startswith("2")), None)
    idempotent = "idempotency-key" in contract.header_params(route)
    if success is not None:
        answer = responses[success]
        headers = answer.setdefault("headers", {})
        if declaration.etag:
            headers["ETag"] = _header("ETag", required=True)
        if declaration.location:
            headers["Location"] = _header("Location", required=True)
        if idempotent:
            headers["Idempotent-Replayed"] = _header("Idempotent-Replayed", required=False)
        if not headers:
            del answer["headers"]
        for media in answer.get("content", {}).values():
            if "example" not in media and "examples" not in media and "schema" in media:
                media["example"] = examples.example_for(media["schema"], components)
        if declaration.links:
            answer["links"] = _links(declaration.links, ids)
    responses.update(_error_responses(contract.codes_of(route)))

    if idempotent:
        required = contract.requires_idempotency_key(route)
        _set_parameter(
            op,
            "Idempotency-Key",
            required=required,
            # Where it is required, blank counts as missing (400): at least one visible character.
            # Where it is optional, blank is the same as not sent.
            schema=(
                {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH, "pattern": r"\S"}
                if required
                else {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH}
            ),
            description=(
                ("Required" if required else "Optional")
                + ": a client-chosen key, unique per request; a retry with the same key and body replays the "
                "first answer (`Idempotent-Replayed: true`), a different body is 422 idempotency_key_reused."
            ),
            example="4f1c2d0e-9b7a-4c35-8e61-2a9d0f3b7c11",
        )
    if contract.has_if_match(route):
        _set_parameter(
            op,
            "If-Match",
            required=True,
            # Blank counts as missing (428). Any other string is well formed: one that is not the
            # current version is a 412, not a malformed request.
            schema={"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"},
            description='The ETag you read (`"<version>"`). Missing: 428; not the current version: 412.',
            example='"1"',
        )
    for param in op.get("parameters", []):
        if "example" not in param and "examples" not in param and "schema" in param:
            param["example"] = examples.example_for(param["schema"], components)
    body = op.get("requestBody", {}).get("content", {})
    for media in body.values():
        if "example" not in media and "examples" not in media and "schema" in media:
            media["example"] = examples.example_for(media["schema"], components)
    realms = [_REALMS[name] for requirement in op.get("security", []) for name in requirement if name in _REALMS]
    op["x-realm"] = realms[0] if realms else "public"


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemDoc.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    examples.attach(components)
    ids = _operation_ids(schema)
    for route in contract.api_routes(app):
        path = re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", route.path_format)
        for method in route.methods:
            op = schema["paths"].get(path, {}).get(method.lower())
            if op is not None:
                _decorate(op, route, ids, components)
    return schema


def builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi`: the document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    return openapi
