"""The OpenAPI document states what the server enforces (issue #20), and docs/api.md says the same.

Pure checks over `create_app().openapi()` and the routes' code (no server): every problem code a
route raises is declared (a static scan of the route, its dependencies and the api functions
they call), headers and parameters are declared where the server needs them, every example is
valid against its schema, the docs list every path and code. One check talks HTTP to the app
in process: a 405 names every method of its path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from api import contract, errors
from api.app import create_app
from api.deps import CurrentCustomer, IdempotencyKey
from api.problems import Problem

DOCS = Path(__file__).resolve().parents[2] / "docs"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()


@pytest.fixture(scope="module")
def openapi(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in openapi["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def error_codes(op: dict[str, Any]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for status, response in op["responses"].items():
        if status.isdigit() and int(status) >= 400:
            schema = response["content"]["application/problem+json"]["schema"]
            out[int(status)] = schema["allOf"][1]["properties"]["code"]["enum"]
    return out


def undeclared(app: FastAPI, packages: tuple[str, ...] = ("api.",)) -> dict[str, set[str]]:
    missing: dict[str, set[str]] = {}
    for route in contract.api_routes(app):
        raised = contract.route_raised_codes(route, packages) - contract.UNDECLARED_CODES
        lacking = raised - contract.codes_of(route)
        if lacking:
            missing[f"{sorted(route.methods)} {route.path_format}"] = lacking
    return missing


# -- problem codes ------------------------------------------------------------------------------


def test_every_route_declares_every_code_it_raises(app: FastAPI) -> None:
    assert undeclared(app) == {}


def test_a_route_raising_an_undeclared_code_fails_the_scan() -> None:
    """The mechanism itself: a route that raises a code it does not declare is caught, through a
    helper it calls too; declaring it (one line) clears it."""
    router = APIRouter()

    def refuse_paused() -> Problem:
        return Problem(409, "order_paused_test_only", "Conflict", "The order is paused.")

    @router.post("/orders/{order_id}/pause")
    def pause(order_id: str, customer: CurrentCustomer, key: IdempotencyKey) -> None:
        raise refuse_paused()

    bad = FastAPI()
    bad.include_router(router, prefix="/v1")
    contract.CODES["order_paused_test_only"] = contract.Code(409, "test only")
    try:
        here = ("api.", "tests.")
        assert undeclared(bad, here) == {"['POST'] /v1/orders/{order_id}/pause": {"order_paused_test_only"}}
        contract.declare("order_paused_test_only")(pause)
        assert undeclared(bad, here) == {}
    finally:
        del contract.CODES["order_paused_test_only"]


def test_declaring_an_unknown_code_is_refused() -> None:
    with pytest.raises(KeyError, match="not_a_code"):
        contract.declare("not_a_code")


def test_each_code_has_one_status_everywhere() -> None:
    # The ledger's and reconciliation's refusals take their status from the contract's table.
    for code, declared in contract.CODES.items():
        assert errors.status_for(code) == declared.status, code
    for code in errors._REFUSALS:
        assert code in contract.CODES or code in errors._UNDECLARED, code


def test_error_responses_are_problems_with_an_enum_of_codes(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        assert "default" not in op["responses"], (method, path)
        for status, codes in error_codes(op).items():
            assert codes, (method, path, status)
            assert all(contract.CODES[c].status == status for c in codes), (method, path, status, codes)
            examples = op["responses"][str(status)]["content"]["application/problem+json"]["examples"]
            assert set(examples) == set(codes), (method, path, status)
        every_code = {c for cs in error_codes(op).values() for c in cs}
        assert set(contract.UNAVAILABLE_CODES) <= every_code, (method, path)
    transfer = error_codes(openapi["paths"]["/v1/transfers"]["post"])
    assert {"insufficient_funds", "same_account", "currency_mismatch", "account_frozen", "invalid_amount"} <= set(
        transfer[422]
    )
    assert transfer[404] == ["account_not_found", "payee_not_found"]
    assert transfer[400] == ["idempotency_key_missing", "malformed_body"]
    otp = error_codes(openapi["paths"]["/v1/transfers/{transfer_id}/otp"]["post"])
    assert "invalid_otp" in otp[422] and "otp_not_pending" in otp[409]


# -- headers, parameters, security ----------------------------------------------------------------


def header(op: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in op.get("parameters", []) if p["in"] == "header" and p["name"] == name), None)


def test_idempotency_key_is_required_on_every_idem_route(app: FastAPI, openapi: dict[str, Any]) -> None:
    idem = {
        (m, r.path_format) for r in contract.api_routes(app) if contract.requires_idempotency_key(r) for m in r.methods
    }
    assert {("POST", "/v1/transfers"), ("POST", "/ops/v1/deposits")} <= idem
    for method, path, op in operations(openapi):
        param = header(op, "Idempotency-Key")
        if (method, path) in idem:
            assert param is not None and param["required"] is True, (method, path)
            assert param["schema"]["minLength"] == 1
            success = next(v for k, v in op["responses"].items() if k.startswith("2"))
            assert "Idempotent-Replayed" in success["headers"], (method, path)
            assert {"idempotency_key_missing", "idempotency_key_reused", "idempotency_key_in_flight"} <= {
                c for cs in error_codes(op).values() for c in cs
            }
        elif param is not None:
            assert param["required"] is False, (method, path)


def test_if_match_is_required_on_edits_and_etag_is_declared(openapi: dict[str, Any]) -> None:
    patch = openapi["paths"]["/ops/v1/accounts/{account_id}"]["patch"]
    param = header(patch, "If-Match")
    assert param is not None and param["required"] is True
    assert error_codes(patch)[428] == ["precondition_required"]
    assert error_codes(patch)[412] == ["version_conflict"]
    for path, method in (
        ("/ops/v1/accounts/{account_id}", "patch"),
        ("/ops/v1/accounts/{account_id}", "get"),
        ("/v1/accounts/{account_id}", "get"),
        ("/v1/accounts", "post"),
    ):
        success = next(v for k, v in openapi["paths"][path][method]["responses"].items() if k.startswith("2"))
        assert success["headers"]["ETag"]["required"] is True, (method, path)
    for method, _path, op in operations(openapi):
        if method in ("PATCH", "PUT") and header(op, "If-Match") is not None:
            assert header(op, "If-Match")["required"] is True  # type: ignore[index]


def test_each_operation_names_its_realm(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["CustomerToken"]["flows"]["password"]["tokenUrl"] == "/v1/auth/token"
    assert schemes["StaffToken"]["flows"]["password"]["tokenUrl"] == "/ops/v1/auth/token"
    public = {("POST", "/v1/signup"), ("POST", "/v1/auth/token"), ("POST", "/ops/v1/auth/token")}
    for method, path, op in operations(openapi):
        names = {name for requirement in op.get("security", []) for name in requirement}
        if path.startswith("/v1/") and (method, path) not in public:
            assert names == {"CustomerToken"} and op["x-realm"] == "customer", (method, path)
            assert error_codes(op)[401] == ["unauthorized"]
        elif path.startswith("/ops/v1/") and (method, path) not in public and method != "OPTIONS":
            assert names == {"StaffToken"} and op["x-realm"] == "staff", (method, path)
            assert "unauthorized" in error_codes(op)[401]
        elif (method, path) in public:
            assert not names and op["x-realm"] == "public", (method, path)


def test_pagination_parameters_are_declared(openapi: dict[str, Any]) -> None:
    paged = 0
    for method, path, op in operations(openapi):
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        if "cursor" in params:
            paged += 1
            limit = params["limit"]["schema"]
            assert (limit["minimum"], limit["maximum"], limit.get("default")) == (1, 200, 50), (method, path)
            assert "invalid_cursor" in error_codes(op)[422], (method, path)
    assert paged >= 10


def test_signup_declares_the_email_pattern_the_server_enforces(openapi: dict[str, Any]) -> None:
    email = openapi["components"]["schemas"]["SignupIn"]["properties"]["email"]
    assert email["pattern"] == r"^[^@ \t\n\r\x0b\x0c\x00]+@[^@ \t\n\r\x0b\x0c\x00]+$"
    assert (email["minLength"], email["maxLength"]) == (3, 254)


# -- examples ---------------------------------------------------------------------------------------


def _validator(openapi: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator({**schema, "components": openapi["components"]})


def test_every_request_and_response_has_a_valid_example(openapi: dict[str, Any]) -> None:
    checked = 0
    for method, path, op in operations(openapi):
        bodies = list(op.get("requestBody", {}).get("content", {}).items())
        for status, response in op["responses"].items():
            bodies += [(f"{status} {mt}", media) for mt, media in response.get("content", {}).items()]
        for _where, media in bodies:
            if "schema" not in media or media["schema"].get("type") == "string":
                continue
            values = [media["example"]] if "example" in media else [e["value"] for e in media["examples"].values()]
            for value in values:
                _validator(openapi, media["schema"]).validate(value)
                checked += 1
        for param in op.get("parameters", []):
            if param.get("required"):
                assert "example" in param, (method, path, param["name"])
                _validator(openapi, param["schema"]).validate(param["example"])
    assert checked > 150


# -- 405 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/transfers", "GET, POST"),
        ("/v1/accounts", "GET, POST"),
        ("/ops/v1/accounts/0193a5e2-7c4b-7d10-9e6f-5b2a1c3d4e5f", "GET, PATCH"),
        ("/ops/v1/fx/rates/USD/EUR", "GET, PUT"),
        ("/ops/v1/reconciliation/runs", "GET, POST"),
    ],
)
def test_405_allow_names_every_method_of_the_path(app: FastAPI, path: str, methods: str) -> None:
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: routing needs no database
    for method in ("OPTIONS", "DELETE"):
        r = client.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == methods
        assert r.json()["code"] == "method_not_allowed"


# -- docs/api.md ---------------------------------------------------------------------------------------

_OP = re.compile(r"`(GET|POST|PUT|PATCH|DELETE|OPTIONS) (/[^`\s]*)`")
_CODE_ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \|", re.M)


def test_docs_api_md_and_the_openapi_name_the_same_operations_and_codes(openapi: dict[str, Any]) -> None:
    text = (DOCS / "api.md").read_text()
    documented_ops = set(_OP.findall(text))
    served_ops = {(m, p) for m, p, _ in operations(openapi)}
    assert served_ops - documented_ops == set(), "operations missing from docs/api.md"
    assert documented_ops - served_ops == set(), "docs/api.md names operations the API does not serve"

    documented_codes = {code: int(status) for code, status in _CODE_ROW.findall(text)}
    served_codes = {c for _, _, op in operations(openapi) for cs in error_codes(op).values() for c in cs}
    assert served_codes - set(documented_codes) == set(), "codes missing from docs/api.md"
    assert set(documented_codes) - served_codes - contract.UNDECLARED_CODES == set(), "codes no operation answers"
    for code in served_codes:
        assert documented_codes[code] == contract.CODES[code].status, code


def test_nothing_points_outside_the_repository() -> None:
    root = DOCS.parent
    offenders = []
    for path in (
        [*root.glob("*.md"), *root.glob("docs/**/*.md")]
        + [
            p
            for d in ("api", "activities", "bench", "chaos", "config", "fx", "ledger", "otp", "portal", "recon")
            for p in (root / d).rglob("*.py")
        ]
        + [*(root / "relay").rglob("*.py"), *(root / "security").rglob("*.py"), *(root / "stack").rglob("*.py")]
        + [*(root / "tests").rglob("*.py"), *(root / "worker").rglob("*.py"), *(root / "workflows").rglob("*.py")]
    ):
        text = path.read_text(errors="replace")
        # Spelled in pieces so that this file does not name the outside folder itself.
        outside = "/".join(("..", "sha" + "red"))
        for needle in ("API.md", "DESIGN.md", outside, "/work" + outside[2:]):
            if needle in text and path.name != "test_contract.py":
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []
