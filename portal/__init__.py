"""The two web portals, server-rendered on top of the JSON API: customers at /portal/, staff at /ops/.

Mount them with `install(app)` (or include `ROUTERS` yourself). They add no API of their own:
every page calls /v1 or /ops/v1 in-process (portal/apiclient.py) with the signed-in user's
bearer token, so ownership, roles, idempotency and problem codes are the API's own.

Sessions (portal/sessions.py): the cookie holds only a random id (HttpOnly, SameSite=Lax,
Secure over https, Path-scoped to its portal so a customer's cookie is never even sent to
/ops/); the server maps it to {realm, API token, expiry} in PostgreSQL (`portal_sessions`),
so every API process serves every session; a session lasts 30 minutes idle at most.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from portal import assets, customer, ops, ops_risk, temporal_ui, totp
from portal.web import CUSTOMER, STAFF

ROUTERS: list[APIRouter] = [
    assets.router(CUSTOMER.prefix),
    assets.router(STAFF.prefix),
    customer.router,
    ops.router,
    ops_risk.router,
    temporal_ui.router,
    totp.customer_router,
    totp.ops_router,
]


def install(app: FastAPI) -> None:
    """Mount both portals on `app` (the API app: the portals call it in-process). Idempotent, so
    a test harness may call it on an app that api/app.py already equipped."""
    if getattr(app.state, "portals_installed", False):
        return
    for router in ROUTERS:
        app.include_router(router)
    app.state.portals_installed = True
