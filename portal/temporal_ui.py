"""The Temporal Web UI for staff, served through the ops portal under the staff login.

Staff open `/ops/temporal/...` (config.settings.TEMPORAL_UI_PATH). The portal checks the staff
session cookie and forwards the request to the UI server, which the launcher starts with that
public path, so every link and asset of the UI resolves under it. The UI's remote codec is
`/ops/temporal-codec` (TEMPORAL_UI_CODEC_PATH): same origin, so the browser sends the session
cookie with the UI's own fetch, and nobody has to tick "include cross-origin credentials" or
paste a token. The codec route hands the payloads to the API's `/ops/v1/temporal-codec` with
the session's bearer token, so the API decides who may decode (roles, second factor), counts
and refuses exactly as for any other staff call. Without a staff session: the UI redirects to
the ops login, the codec answers 401, and the UI shows ciphertext.

Read-only on purpose: only GET and HEAD reach the UI server. Terminating, resetting or
signalling a transfer's workflow from the UI would move it around the ledger's own rules
(holds, reviews, reversals); staff do those through the ops portal, which audits them.
The UI server on its own port (:8233) stays bound to the loopback address and has no codec
session: whoever reaches it sees ciphertext only.
"""

from __future__ import annotations

import json
import re
from typing import Final
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH, Settings, get_settings
from portal.sessions import Session
from portal.web import STAFF, api_client, store

# Request headers the UI server needs; cookies and Authorization are ours and stay here.
_FORWARD_REQUEST: Final = (
    "accept",
    "accept-encoding",
    "accept-language",
    "if-none-match",
    "if-modified-since",
    "range",
)
# Hop-by-hop headers (RFC 9110 7.6.1) and cookies the UI server might set on our origin.
_DROP_RESPONSE: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        # The body is passed on as httpx decoded it: its length and encoding are uvicorn's to set.
        "content-length",
        "content-encoding",
    }
)
# The UI's JSON (workflow histories, search attributes) must not stay in a browser cache.
_API_PREFIX: Final = TEMPORAL_UI_PATH + "/api/"
_IMMUTABLE_PREFIX: Final = TEMPORAL_UI_PATH + "/_app/immutable/"
# Generous for a history page; the UI server is local.
UPSTREAM_TIMEOUT_S: Final = 30.0
# Above the frontend's long-poll interval for history (about 20 s on Temporal's defaults).
LONG_POLL_TIMEOUT_S: Final = 90.0

router = APIRouter(include_in_schema=False)


def _settings(request: Request) -> Settings:
    runtime = getattr(request.app.state, "runtime", None)
    settings: Settings = runtime.settings if runtime is not None else get_settings()
    return settings


def _upstream(request: Request) -> httpx.AsyncClient:
    """One pooled client per app, to the UI server on the loopback address."""
    client: httpx.AsyncClient | None = getattr(request.app.state, "temporal_ui_client", None)
    if client is None:
        s = _settings(request)
        client = httpx.AsyncClient(
            base_url=s.temporal_ui_upstream or f"http://{s.host}:{s.temporal_ui_port}",
            timeout=UPSTREAM_TIMEOUT_S,
            trust_env=False,
        )
        request.app.state.temporal_ui_client = client
    return client


def staff_session(request: Request) -> Session | None:
    return store(request).get(request.cookies.get(STAFF.cookie), STAFF.realm)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{STAFF.login_url}?{urlencode({'next': target})}", status_code=303)


def _unauthorised() -> JSONResponse:
    return JSONResponse(
        {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "code": "unauthorized",
            "detail": "Sign in to the operations portal first.",
        },
        status_code=401,
        media_type="application/problem+json",
    )


# A workflow's page without its run id: the UI finds the latest run and navigates there in the
# browser, but it loses that navigation when its first calls answer in another order than it
# expects (seen through this proxy: a blank page). Resolved here instead, in one describe call.
_WORKFLOW_PAGE: Final = re.compile(rf"^{re.escape(TEMPORAL_UI_PATH)}/namespaces/([^/]+)/workflows/([^/]+)/?$")
_SETTINGS_PATH: Final = TEMPORAL_UI_PATH + "/api/v1/settings"


@router.api_route(TEMPORAL_UI_PATH, methods=["GET", "HEAD"])
@router.api_route(TEMPORAL_UI_PATH + "/{path:path}", methods=["GET", "HEAD"])
async def temporal_ui(request: Request, path: str = "") -> Response:
    if staff_session(request) is None:
        # The UI's own data calls get a 401 it can show; a page navigation goes to the login.
        return _unauthorised() if request.url.path.startswith(_API_PREFIX) else _to_login(request)
    upstream = _upstream(request)
    try:
        if request.url.path == _SETTINGS_PATH:
            return await _read_only_settings(upstream)
        if (page := _WORKFLOW_PAGE.match(request.url.path)) and (
            run_url := await _latest_run_url(upstream, page.group(1), page.group(2))
        ):
            return RedirectResponse(run_url, status_code=302)
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD_REQUEST}
        # Identity: the body is passed on whole (httpx would otherwise hand back a decoded body
        # under the upstream's Content-Encoding). Loopback bytes are cheap.
        headers["accept-encoding"] = "identity"
        answer = await upstream.request(request.method, url, headers=headers, timeout=_timeout_s(request))
    except httpx.HTTPError:
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Service unavailable",
                "status": 503,
                "code": "service_unavailable",
                "detail": "The Temporal Web UI is not reachable.",
                "part": "temporal_ui",
            },
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "5"},
        )
    out = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP_RESPONSE}
    out["x-content-type-options"] = "nosniff"
    out["referrer-policy"] = "same-origin"
    out["x-frame-options"] = "DENY"
    if request.url.path.startswith(_API_PREFIX):
        out["cache-control"] = "no-store"
    elif request.url.path.startswith(_IMMUTABLE_PREFIX) and answer.status_code == 200:
        # Content-hashed file names: a staff browser fetches the UI's ~400 files once, not per page.
        out["cache-control"] = "private, max-age=604800, immutable"
    return Response(answer.content, status_code=answer.status_code, headers=out)


def _timeout_s(request: Request) -> float:
    # The UI long-polls a running workflow's history (waitNewEvent=true): the server holds that
    # call open until an event comes or its own poll interval ends.
    return LONG_POLL_TIMEOUT_S if "waitNewEvent=true" in request.url.query else UPSTREAM_TIMEOUT_S


async def _read_only_settings(upstream: httpx.AsyncClient) -> Response:
    """The UI's settings with its write actions switched off, so it offers no button that the
    proxy would refuse (see the module docstring)."""
    answer = await upstream.get(_SETTINGS_PATH)
    settings = answer.json()
    if isinstance(settings, dict):
        settings["DisableWriteActions"] = True
        for key in settings:
            if key.endswith("Disabled") and key != "RefreshWorkflowCountsDisabled":
                settings[key] = True
    return JSONResponse(settings, status_code=answer.status_code, headers={"Cache-Control": "no-store"})


async def _latest_run_url(upstream: httpx.AsyncClient, namespace: str, workflow_id: str) -> str | None:
    answer = await upstream.get(f"{TEMPORAL_UI_PATH}/api/v1/namespaces/{namespace}/workflows/{workflow_id}")
    if answer.status_code != 200:
        return None  # the UI's own page says "not found"
    try:
        run_id = answer.json()["workflowExecutionInfo"]["execution"]["runId"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-fA-F-]{1,64}", run_id):
        return None
    return f"{TEMPORAL_UI_PATH}/namespaces/{namespace}/workflows/{workflow_id}/{run_id}/history"


@router.api_route(TEMPORAL_UI_PATH + "/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"])
async def temporal_ui_write(request: Request, path: str) -> Response:
    return JSONResponse(
        {
            "type": "about:blank",
            "title": "Method not allowed",
            "status": 405,
            "code": "read_only",
            "detail": "The Temporal Web UI is read-only here: act on transfers in the operations portal.",
        },
        status_code=405,
        media_type="application/problem+json",
        headers={"Allow": "GET, HEAD"},
    )


def _same_origin(request: Request) -> bool:
    # A same-origin fetch POST carries Origin; a cross-site one carries its own. No Origin at all
    # is not a browser's fetch: refused too, the cookie being the only credential here.
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.url.netloc


@router.post(TEMPORAL_UI_CODEC_PATH + "/{operation}")
async def temporal_codec(request: Request, operation: str) -> Response:
    if operation not in ("decode", "encode"):
        return JSONResponse({"code": "not_found", "status": 404, "title": "Not found"}, status_code=404)
    session = staff_session(request)
    if session is None or not _same_origin(request):
        return _unauthorised()
    try:
        payloads = json.loads(await request.body())
    except ValueError:
        payloads = None
    if not isinstance(payloads, dict):
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Invalid payload",
                "status": 422,
                "code": "invalid_payload",
                "detail": "The body must be the remote codec's JSON.",
            },
            status_code=422,
            media_type="application/problem+json",
        )
    async with api_client(request, session.api_token) as api:
        answer = await api.send("POST", f"{STAFF.api_prefix}/temporal-codec/{operation}", json=payloads)
    if answer.status_code == 401:
        # The API no longer takes this session's token (revoked, expired): the session is over.
        store(request).drop(request.cookies.get(STAFF.cookie))
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/json"),
        headers={"Cache-Control": "no-store"},
    )
