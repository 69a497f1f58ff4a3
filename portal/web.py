"""What both portals share: realms, templates, the route class that adds security headers and
turns refusals into pages, sessions from cookies, CSRF checks, and the per-request `Page`."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from portal import format as fmt
from portal import messages
from portal.apiclient import ApiClient, ApiProblem, NotAuthenticated
from portal.nav import allowed, nav_for
from portal.sessions import Realm, Session, SessionStore
from security.sealed import load_sealer

log = logging.getLogger("ledgerflow.portal")

HERE: Final = Path(__file__).parent

# The contract's policy plus a few directives that cost nothing: no plugins, no <base>
# hijacking, forms post only to us.
CSP: Final = (
    "default-src 'self'; script-src 'self'; frame-ancestors 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class RealmConfig:
    realm: Realm
    prefix: str  # URL prefix of the portal
    api_prefix: str  # the API realm it calls
    cookie: str  # session cookie, scoped to `prefix` by its Path
    title: str

    @property
    def login_cookie(self) -> str:
        return f"{self.cookie}_login"

    @property
    def login_url(self) -> str:
        return f"{self.prefix}/login"

    @property
    def home_url(self) -> str:
        return f"{self.prefix}/"


CUSTOMER: Final = RealmConfig("customer", "/portal", "/v1", "lf_portal", "Ledgerflow")
STAFF: Final = RealmConfig("staff", "/ops", "/ops/v1", "lf_ops", "Ledgerflow Ops")
_REALMS: Final = {"customer": CUSTOMER, "staff": STAFF}


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,  # a typo in a template is an error in tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        money=fmt.format_money,
        amount=fmt.format_amount,
        input_amount=fmt.input_amount,
        rfc3339=fmt.rfc3339,
        human_time=fmt.human_time,
        short_id=fmt.short_id,
        account_number=fmt.account_number,
        bps=fmt.format_bps,
        status_label=messages.status_label,
        failure_message=messages.failure_message,
        currencies=fmt.currencies(),
    )
    return env


TEMPLATES: Final = _env()


def render_html(name: str, **context: Any) -> str:
    return TEMPLATES.get_template(name).render(**context)


# -- refusals raised by routes and dependencies ----------------------------------------------


class LoginRequired(Exception):
    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason)


class CsrfFailed(Exception):
    pass


class PageError(Exception):
    """Render the realm's error page with this status, title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        self.status = status
        self.title = title
        self.message = message
        super().__init__(message)


# -- sessions --------------------------------------------------------------------------------


def store(request: Request) -> SessionStore:
    """The app's session store: a handle on the `portal_sessions` table of the app's database
    (every API process serving that database shares the sessions)."""
    state = request.app.state
    existing: SessionStore | None = getattr(state, "portal_sessions", None)
    if existing is None:
        runtime = state.runtime
        existing = SessionStore(runtime.engine, load_sealer(runtime.settings))
        state.portal_sessions = existing
    return existing


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def api_client(request: Request, token: str | None) -> ApiClient:
    # The API sees the browser's host and address, as if it had been called directly.
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return ApiClient(request.app, token=token, client_ip=client_ip(request), base_url=origin)


async def revoke(request: Request, realm: RealmConfig, session: Session) -> None:
    """Best effort: end the API token too, so nothing can use it after the portal session."""
    try:
        async with api_client(request, session.api_token) as api:
            await api.send("POST", f"{realm.api_prefix}/auth/logout")
    except Exception as err:  # the token expires on its own anyway
        log.warning("token revocation failed: %s", type(err).__name__)


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    path: str,
    samesite: Literal["lax", "strict"] = "lax",
) -> None:
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite=samesite,
        # Secure whenever the request came over TLS (uvicorn sets the scheme from a trusted
        # proxy's X-Forwarded-Proto); plain http on 127.0.0.1 in development and tests.
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax")


# -- the per-request page context ----------------------------------------------------------


@dataclass
class Page:
    request: Request
    realm: RealmConfig
    session: Session | None
    api: ApiClient
    form: FormData | None = None

    @property
    def signed_in(self) -> Session:
        assert self.session is not None, "route without a session dependency"
        return self.session

    def field(self, name: str, default: str = "", *, strip: bool = True) -> str:
        """A form field as text (a file upload or a missing field is `default`). Passwords are
        read with strip=False: their spaces are part of them."""
        value = self.form.get(name) if self.form is not None else None
        if not isinstance(value, str):
            return default
        return value.strip() if strip else value

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render_page(self.request, self.realm, self.session, template, status_code, **context)

    def redirect(self, url: str, **params: str) -> RedirectResponse:
        if params:
            url = f"{url}?{urlencode({k: v for k, v in params.items() if v})}"
        # 303: the browser follows a POST with a GET (post/redirect/get, no resubmission on reload).
        return RedirectResponse(url, status_code=303)

    def flash(self, kind: str, text: str) -> None:
        if self.session is not None:
            self.session.flash(kind, text)  # type: ignore[arg-type]


def render_page(
    request: Request,
    realm: RealmConfig,
    session: Session | None,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    base: dict[str, Any] = {
        "realm": realm,
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "flashes": session.take_flashes() if session else [],
        "path": request.url.path,
        "now": datetime.now(UTC),
        "static": f"{realm.prefix}/static",
        "nav": nav_for(realm.realm, session.role) if session else [],
        "active_nav": _active_nav(realm, session, request.url.path),
        "can": (lambda *roles: allowed(session.role, *roles)) if session else (lambda *roles: False),
    }
    return HTMLResponse(render_html(template, **base, **context), status_code=status_code)


def _active_nav(realm: RealmConfig, session: Session | None, path: str) -> str:
    """The nav item for this page: the longest item URL the path starts with."""
    if session is None:
        return ""
    best = ""
    key = ""
    for item in nav_for(realm.realm, session.role):
        if (path == item.url or path.startswith(item.url + "/")) and len(item.url) > len(best):
            best, key = item.url, item.key
    return key


def error_page(request: Request, realm: RealmConfig, status: int, title: str, message: str) -> HTMLResponse:
    session = store(request).get(request.cookies.get(realm.cookie), realm.realm)
    return render_page(request, realm, session, "error.html", status, title=title, message=message)


def problem_page(request: Request, realm: RealmConfig, problem: ApiProblem) -> HTMLResponse:
    if problem.code == "mfa_enrolment_required":
        # Not a dead end: the page links to where the second factor is set up (portal/totp.py).
        session = store(request).get(request.cookies.get(realm.cookie), realm.realm)
        return render_page(request, realm, session, "totp/required.html", 403, security_url=f"{realm.prefix}/security")
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 412: "Changed meanwhile", 422: "Refused"}
    status = problem.status if 400 <= problem.status < 600 else 500
    return error_page(request, realm, status, titles.get(status, "Something went wrong"), problem.message)


# -- the route class: headers and refusals, for every portal route ------------------------------


def route_class(realm: RealmConfig) -> type[APIRoute]:
    class PortalRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            original = super().get_route_handler()

            async def handler(request: Request) -> Response:
                try:
                    response = await original(request)
                except LoginRequired as exc:
                    response = _to_login(request, realm, exc.reason)
                except NotAuthenticated:
                    # The API no longer accepts the token (revoked or expired there first).
                    store(request).drop(request.cookies.get(realm.cookie))
                    response = _to_login(request, realm, "expired")
                except CsrfFailed:
                    response = error_page(
                        request,
                        realm,
                        403,
                        "Form expired",
                        "This form is no longer valid (it may be from an old page or another site). "
                        "Go back, reload the page and try again.",
                    )
                except PageError as exc:
                    response = error_page(request, realm, exc.status, exc.title, exc.message)
                except ApiProblem as exc:
                    response = problem_page(request, realm, exc)
                except RequestValidationError:
                    # Only path and query parameters are declared (forms are read by hand), so a
                    # validation error is a malformed link, e.g. an id that is not a UUID.
                    response = error_page(request, realm, 404, "Not found", "That page does not exist.")
                for name, value in SECURITY_HEADERS.items():
                    response.headers.setdefault(name, value)
                # Balances and codes must not be kept by the browser or shown by Back after logout.
                response.headers.setdefault("Cache-Control", "no-store")
                return response

            return handler

    return PortalRoute


def _to_login(request: Request, realm: RealmConfig, reason: str) -> Response:
    params: dict[str, str] = {}
    if request.method == "GET" and request.url.path != realm.login_url:
        params["next"] = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if reason:
        params["reason"] = reason
    url = realm.login_url + (f"?{urlencode(params)}" if params else "")
    response = RedirectResponse(url, status_code=303)
    if reason in ("expired", "wrong_realm"):
        clear_cookie(response, realm.cookie, realm.prefix)
    return response


def safe_next(realm: RealmConfig, target: str | None) -> str:
    """Where to go after login: only a path inside this portal (no open redirect)."""
    if not target:
        return realm.home_url
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(realm.prefix + "/") or "\\" in target:
        return realm.home_url
    return target


# -- dependencies --------------------------------------------------------------------------


def _check_origin(request: Request) -> None:
    """Defence in depth next to the CSRF token: a browser's cross-site POST carries its Origin.
    Hosts are compared, not schemes: behind a TLS proxy the app may see http while the browser
    says https."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    if urlsplit(origin).netloc != request.url.netloc:
        raise CsrfFailed()


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def anonymous_page(realm: RealmConfig) -> Callable[[Request], AsyncIterator[Page]]:
    """For the login and sign-up pages: no session needed (a live one is passed along)."""

    async def dependency(request: Request) -> AsyncIterator[Page]:
        session = await run_in_threadpool(store(request).get, request.cookies.get(realm.cookie), realm.realm)
        form = None
        if request.method == "POST":
            _check_origin(request)
            form = await request.form()
            # Login CSRF: the form's token must match the cookie set with the form (double submit).
            token = form.get("csrf_token")
            if not _same(token if isinstance(token, str) else "", request.cookies.get(realm.login_cookie, "")):
                raise CsrfFailed()
        async with api_client(request, None) as api:
            yield Page(request, realm, session, api, form)

    return dependency


def signed_in_page(realm: RealmConfig) -> Callable[[Request], AsyncIterator[Page]]:
    """A session of `realm` is required (else: to the login page); a POST must carry its CSRF token."""

    async def dependency(request: Request) -> AsyncIterator[Page]:
        sessions = store(request)
        sid = request.cookies.get(realm.cookie)
        # The store is PostgreSQL: its calls run in the thread pool, off the event loop.
        session = await run_in_threadpool(sessions.get, sid, realm.realm)
        if session is None:
            timed_out = await run_in_threadpool(sessions.expired, sid)
            if timed_out is not None:
                await revoke(request, realm, timed_out)
                raise LoginRequired("expired")
            raise LoginRequired()
        form = None
        if request.method == "POST":
            _check_origin(request)
            form = await request.form()
            token = form.get("csrf_token")
            if not _same(token if isinstance(token, str) else "", session.csrf_token):
                raise CsrfFailed()
        async with api_client(request, session.api_token) as api:
            yield Page(request, realm, session, api, form)

    return dependency


def login_form_token(request: Request, realm: RealmConfig) -> str:
    """The double-submit token for a login/sign-up form: reuse the cookie's, or make one."""
    return request.cookies.get(realm.login_cookie) or secrets.token_urlsafe(32)


def with_login_cookie(request: Request, realm: RealmConfig, response: Response, token: str) -> Response:
    # Strict: the token is only needed by our own forms, never on a cross-site navigation.
    set_cookie(request, response, realm.login_cookie, token, realm.prefix, samesite="strict")
    return response


async def start_session(
    page: Page, token: Mapping[str, Any], *, email: str, name: str = "", role: str = "", user_id: str = ""
) -> Session:
    sessions = store(page.request)
    for stale in await run_in_threadpool(sessions.sweep):
        await revoke(page.request, _REALMS[stale.realm], stale)
    # A fresh id at every login (never reuse one the browser brought: session fixation).
    page.session = await run_in_threadpool(
        partial(
            sessions.create,
            page.realm.realm,
            str(token["access_token"]),
            int(token["expires_in"]),
            email=email,
            name=name,
            role=role,
            user_id=user_id,
        )
    )
    return page.session


def finish_login(page: Page, session: Session, target: str) -> Response:
    response = page.redirect(safe_next(page.realm, target))
    set_cookie(page.request, response, page.realm.cookie, session.id, page.realm.prefix)
    clear_cookie(response, page.realm.login_cookie, page.realm.prefix)
    return response


async def end_session(page: Page) -> Response:
    session = await run_in_threadpool(store(page.request).drop, page.request.cookies.get(page.realm.cookie))
    if session is not None:
        await revoke(page.request, page.realm, session)
    response = page.redirect(page.realm.login_url, reason="logged_out")
    clear_cookie(response, page.realm.cookie, page.realm.prefix)
    return response


LOGIN_REASONS: Final = {
    "expired": "Your session has ended. Please log in again.",
    "logged_out": "You have logged out.",
    "wrong_realm": "Please log in with a staff account.",
}
