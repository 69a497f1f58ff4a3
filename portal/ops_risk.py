"""The ops portal's risk settings (/ops/risk): the default limits every customer without their
own gets (admins set them, If-Match from the page) and the fraud rules (everyone on staff reads
them; admins switch a rule on or off, choose review or block, and change its parameters). Every
change is a call to /ops/v1, which validates and audits it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from portal import web
from portal.apiclient import ApiProblem
from portal.messages import problem_message
from portal.ops import LIMITS_CONFLICT, Staff, require, save_currency_limits
from portal.web import STAFF, Page

router = APIRouter(prefix=STAFF.prefix, route_class=web.route_class(STAFF), include_in_schema=False)

DEFAULTS_PATH = "/ops/v1/limits/defaults"
RuleName = Annotated[str, Path(pattern="^[a-z_]{1,40}$")]


async def _risk_page(page: Page, status: int = 200, *, error: str = "", rule_error: str = "") -> Response:
    rules = await page.api.get("/ops/v1/risk/rules")
    defaults: dict[str, Any] | None = None
    version = ""
    if page.signed_in.role == "admin":
        # The defaults are admin-only in the API too; other roles see the rules alone.
        response = await page.api.send("GET", DEFAULTS_PATH)
        if response.status_code == 200:
            defaults = response.json()
            version = response.headers.get("etag", f'"{defaults["version"]}"').strip('"')
    return page.render(
        "ops/risk.html",
        status,
        rules=[
            {**rule, "params_json": json.dumps(rule["params"], indent=2, sort_keys=True)} for rule in rules["items"]
        ],
        defaults=defaults,
        version=version,
        error=error,
        rule_error=rule_error,
    )


@router.get("/risk")
async def risk(page: Staff) -> Response:
    require(page, "risk")
    return await _risk_page(page)


@router.post("/risk/defaults")
async def set_default_limits(page: Staff) -> Response:
    """Set one currency's default limits; the other currencies stay as they are."""
    require(page, "risk")
    try:
        saved = await save_currency_limits(page, DEFAULTS_PATH)
    except ValueError:
        return await _risk_page(page, 422, error=problem_message("invalid_limits"))
    except ApiProblem as err:
        if err.code == "version_conflict":
            return await _risk_page(page, 409, error=LIMITS_CONFLICT)
        return await _risk_page(page, err.status, error=err.message)
    page.flash("ok", saved.replace("limits", "default limits"))
    return page.redirect(f"{STAFF.prefix}/risk")


@router.post("/risk/rules/{name}")
async def set_rule(page: Staff, name: RuleName) -> Response:
    """Change one fraud rule: on or off, its action and its parameters (JSON, as the API takes them)."""
    require(page, "risk")
    try:
        params = json.loads(page.field("params", strip=False))
    except json.JSONDecodeError:
        return await _risk_page(page, 422, rule_error=f"{name}: the parameters are not valid JSON.")
    body = {"enabled": page.field("enabled") == "on", "action": page.field("action"), "params": params}
    try:
        await page.api.call("PUT", f"/ops/v1/risk/rules/{name}", json=body)
    except ApiProblem as err:
        if err.status == 404 and not err.route_missing and err.code != "rule_not_found":
            raise
        return await _risk_page(page, err.status, rule_error=f"{name}: {err.message}")
    page.flash("ok", f"The {name} rule is saved; it applies to the next transfer assessed.")
    return page.redirect(f"{STAFF.prefix}/risk")
