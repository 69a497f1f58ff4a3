"""Two-factor pages of both portals (`/portal/security`, `/ops/security`) and the login's code step.

Every action is a call to the realm's `/me/totp` API: the enrolment page shows the pending
secret's `otpauth://` URI as a QR code (segno, inline SVG: nothing fetched at run time, and the
portal's CSP allows no outside source anyway) and as text for manual entry; a confirmation
shows the 10 recovery codes once (the page is not cached: `Cache-Control: no-store`); a code
turns it off. These pages need a session but not a second factor, since they are where one is
set up; every other ops page needs one (`require_enrolled`).
"""

# No `from __future__ import annotations` here: the routes below are made per realm in a
# function, and FastAPI must see their dependency annotations as objects, not as names.
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from markupsafe import Markup

from portal import web
from portal.apiclient import ApiProblem
from portal.web import CUSTOMER, STAFF, Page, RealmConfig

ENROLMENT_REQUIRED = "mfa_enrolment_required"


def security_url(realm: RealmConfig) -> str:
    return f"{realm.prefix}/security"


def qr_svg(uri: str) -> Markup:
    """The URI as an inline SVG QR code (error correction M: survives a phone camera's glare)."""
    svg = segno.make_qr(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app")
    # segno writes the SVG itself from the URI (ours, from the API): no user markup reaches it.
    return Markup(svg)


async def token_with_code(page: Page, realm: RealmConfig, email: str, password: str, code: str) -> dict[str, Any]:
    """The realm's token for the login form's fields (`code` sent as `totp` when given).

    Raises:
        ApiProblem: as the API answered (mfa_required: ask for the code).
    """
    data = {"username": email, "password": password}
    if code:
        data["totp"] = code
    token: dict[str, Any] = await page.api.call("POST", f"{realm.api_prefix}/auth/token", data=data)
    return token


async def needs_enrolment(api_token: str, page: Page, realm: RealmConfig) -> bool:
    """Whether the freshly signed-in principal must enrol before anything else."""
    async with web.api_client(page.request, api_token) as api:
        status = await api.get(f"{realm.api_prefix}/me/totp")
    return bool(status["required"]) and not bool(status["enabled"])


async def require_enrolled(page: Page) -> None:
    """For ops pages: staff without TOTP get the 403 enrolment page, whether or not the page
    itself calls the API.

    Raises:
        ApiProblem: 403 mfa_enrolment_required.
    """
    status = await page.api.get(f"{page.realm.api_prefix}/me/totp")
    if bool(status["required"]) and not bool(status["enabled"]):
        raise ApiProblem(403, {"code": ENROLMENT_REQUIRED})


def _router(realm: RealmConfig) -> APIRouter:
    router = APIRouter(prefix=realm.prefix, route_class=web.route_class(realm), include_in_schema=False)
    signed_in = Annotated[Page, Depends(web.signed_in_page(realm))]
    api = realm.api_prefix

    async def _status_page(page: Page, status_code: int = 200, error: str = "") -> Response:
        status = await page.api.get(f"{api}/me/totp")
        return page.render("totp/security.html", status_code, status=status, error=error)

    async def _enrol_page(page: Page, status_code: int = 200, error: str = "") -> Response:
        enrolment = await page.api.call("POST", f"{api}/me/totp")
        return page.render(
            "totp/enrol.html",
            status_code,
            secret=enrolment["secret"],
            otpauth_uri=enrolment["otpauth_uri"],
            qr=qr_svg(str(enrolment["otpauth_uri"])),
            error=error,
        )

    @router.get("/security")
    async def security(page: signed_in) -> Response:
        return await _status_page(page)

    @router.post("/security/totp")
    async def begin(page: signed_in) -> Response:
        try:
            return await _enrol_page(page)
        except ApiProblem as err:
            if err.code == "totp_already_enabled":
                return page.redirect(security_url(realm))
            raise

    @router.post("/security/totp/confirm")
    async def confirm(page: signed_in) -> Response:
        try:
            done = await page.api.call("POST", f"{api}/me/totp/confirm", json={"code": page.field("code")})
        except ApiProblem as err:
            if err.code in ("invalid_totp", "validation_error", "too_many_attempts"):
                return await _enrol_page(page, 422 if err.status == 422 else err.status, err.message)
            raise
        # Shown once, right here (no redirect that could be reloaded from history).
        return page.render("totp/recovery_codes.html", recovery_codes=done["recovery_codes"])

    @router.post("/security/totp/disable")
    async def disable(page: signed_in) -> Response:
        try:
            await page.api.call("DELETE", f"{api}/me/totp", json={"code": page.field("code")})
        except ApiProblem as err:
            if err.code in ("invalid_totp", "validation_error", "too_many_attempts", "totp_not_enabled"):
                return await _status_page(page, 422 if err.status == 422 else err.status, err.message)
            raise
        page.flash("ok", "Two-factor authentication is off.")
        return page.redirect(security_url(realm))

    return router


customer_router = _router(CUSTOMER)
ops_router = _router(STAFF)
