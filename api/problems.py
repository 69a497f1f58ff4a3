"""RFC 9457 problem details: every error the API returns has this shape and a stable `code`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.unavailable import unavailable_part

PROBLEM_JSON: Final = "application/problem+json"
log = logging.getLogger("ledgerflow.api")


class Problem(Exception):
    """An error to answer with; raise it from any route."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    status: int, code: str, title: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://ledgerflow.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def not_found(what: str = "resource", code: str = "not_found") -> Problem:
    return Problem(404, code, "Not found", f"No such {what}.")


_STATUS_CODES: Final = {
    400: "malformed_body",  # the only 400 Starlette raises: a body that cannot be parsed
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# Body fields whose validation failures have their own contract code instead of validation_error.
_FIELD_CODES: Final = {"amount_minor": ("invalid_amount", "amount_minor must be a positive integer of minor units")}


def _validation_code(errors: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The contract code when every error is about one field that has its own code."""
    fields = {e["loc"][1] if len(e["loc"]) >= 2 and e["loc"][0] in ("body", "query") else None for e in errors}
    if len(fields) == 1:
        field = fields.pop()
        return None if field is None else _FIELD_CODES.get(field)
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only the location and message: pydantic's `input` would echo secrets (passwords, OTPs).
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        special = _validation_code(errors)
        if special is not None:
            return problem_response(422, special[0], "Invalid amount", special[1], errors=errors)
        return problem_response(
            422,
            "validation_error",
            "Request is not valid",
            "One or more fields are missing or malformed.",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the one route it tried; a path may have
            # several routes (GET and POST /v1/transfers): RFC 9110 wants all of them.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(exc.status_code, code, str(exc.detail), str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path, sorted."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(route.methods or ())
    return sorted(methods)


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The answer to an error no handler took: 503 when a dependency is down, else 500.

    Never leaks a stack trace or SQL: it is logged server-side, the answer has a stable code.
    """
    part = unavailable_part(exc)
    if part is not None:
        log.warning("%s unavailable during %s %s: %s", part, request.method, request.url.path, exc)
        return problem_response(
            503,
            "service_unavailable",
            "Service unavailable",
            f"A part of the system ({part}) is not reachable right now; the request can be retried safely.",
            headers={"Retry-After": "1"},
            part=part,
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        "Something went wrong on our side; nothing was changed twice. Try again.",
    )
