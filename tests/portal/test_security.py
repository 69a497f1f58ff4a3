"""The portals' security properties, checked over HTTP and in the browser: headers, cookies,
CSRF, realm separation, logout that ends the session (and its API token) server-side."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from portal.sessions import id_hash
from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow
from tests.portal.harness import PortalStack


def test_security_headers_and_no_external_assets(portal_stack: PortalStack) -> None:
    with httpx.Client(base_url=portal_stack.base_url) as http:
        for path in ("/portal/login", "/ops/login", "/portal/signup"):
            r = http.get(path)
            assert r.status_code == 200
            assert r.headers["content-security-policy"].startswith(
                "default-src 'self'; script-src 'self'; frame-ancestors 'none'"
            )
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"
            assert r.headers["cache-control"] == "no-store"
            assert "<script>" not in r.text and "http://" not in r.text.replace(portal_stack.base_url, "")
        css = http.get("/portal/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert http.get("/ops/static/poll.js").headers["content-type"].startswith("text/javascript")
        assert http.get("/portal/static/..%2Fweb.py").status_code == 404


def test_login_form_needs_its_csrf_token(portal_stack: PortalStack) -> None:
    with httpx.Client(base_url=portal_stack.base_url) as http:
        r = http.post("/portal/login", data={"email": "x@example.test", "password": "whatever1"})
        assert r.status_code == 403 and "Form expired" in r.text
    # A matching token does not help a post from another site.
    with httpx.Client(base_url=portal_stack.base_url, cookies={"lf_ops_login": "t"}) as http:
        r = http.post(
            "/ops/login",
            data={"email": "x@example.test", "password": "whatever1", "csrf_token": "t"},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403


def test_customer_never_opens_ops_pages(portal_stack: PortalStack, people: Contexts) -> None:
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Ivan Example")
    p = customer.page
    cookies = {c["name"]: c for c in p.context.cookies()}
    session = cookies["lf_portal"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/portal"
    for path in (
        "/ops/",
        "/ops/transfers",
        "/ops/review",
        "/ops/audit",
        "/ops/accounts/00000000-0000-0000-0000-000000000000",
    ):
        p.goto(portal_stack.base_url + path)
        expect(p.get_by_role("heading", name="Operations — staff login")).to_be_visible()
    # Even the customer's session id presented to /ops/ opens nothing: sessions carry their realm.
    p.context.add_cookies([{"name": "lf_ops", "value": session["value"], "url": portal_stack.base_url + "/ops/"}])
    p.goto(portal_stack.base_url + "/ops/transfers")
    expect(p.get_by_role("heading", name="Operations — staff login")).to_be_visible()
    # And customer credentials are not staff credentials.
    p.get_by_label("Staff e-mail").fill(customer.email)
    p.get_by_label("Password").fill(customer.password)
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("alert")).to_have_text("The e-mail address, password or code is not correct.")


def test_logout_ends_the_session_and_revokes_the_token(portal_stack: PortalStack, people: Contexts) -> None:
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Judy Example")
    p = customer.page
    before = portal_stack.sql("SELECT count(*) FROM auth_tokens WHERE revoked_at IS NOT NULL")[0][0]
    stolen = {c["name"]: c["value"] for c in p.context.cookies()}["lf_portal"]
    p.get_by_role("button", name="Log out").click()
    expect(p.get_by_role("status")).to_have_text("You have logged out.")
    after = portal_stack.sql("SELECT count(*) FROM auth_tokens WHERE revoked_at IS NOT NULL")[0][0]
    assert after == before + 1
    # The old cookie value is worthless now: the server forgot the session.
    with httpx.Client(base_url=portal_stack.base_url, cookies={"lf_portal": stolen}) as http:
        r = http.get("/portal/accounts")
        assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")
    p.goto(customer.url("/accounts"))
    expect(p.get_by_role("heading", name="Log in")).to_be_visible()
    # Logging in again lands where the customer wanted to go.
    customer.page.get_by_label("E-mail address").fill(customer.email)
    customer.page.get_by_label("Password").fill(customer.password)
    customer.page.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("heading", name="Your accounts")).to_be_visible()


def test_staff_pages_work_on_a_phone_screen(portal_stack: PortalStack, people: Contexts) -> None:
    ops = OpsFlow(people.page(viewport={"width": 375, "height": 740}), portal_stack)
    ops.login("admin")
    width = ops.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"horizontal scrolling on a phone: {width}px"
    # Keyboard: the skip link is the first stop.
    ops.page.keyboard.press("Tab")
    assert ops.page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_idle_session_times_out_and_its_token_is_revoked(portal_stack: PortalStack, people: Contexts) -> None:
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Ken Example")
    sid = {c["name"]: c["value"] for c in customer.page.context.cookies()}["lf_portal"]
    sessions = portal_stack.app.state.portal_sessions
    assert sessions.get(sid, "customer") is not None
    # 30 minutes without a request (the session's row says when it ends; every process reads it).
    portal_stack.sql(
        "UPDATE portal_sessions SET last_seen_at = last_seen_at - make_interval(secs => %s), "
        "expires_at = expires_at - make_interval(secs => %s) WHERE id_hash = %s",
        sessions.idle_s + 1,
        sessions.idle_s + 1,
        id_hash(sid),
    )
    customer.page.goto(customer.url("/accounts"))
    expect(customer.page.get_by_role("status")).to_have_text("Your session has ended. Please log in again.")
    assert sessions.get(sid, "customer") is None
    revoked = portal_stack.sql(
        "SELECT count(*) FROM auth_tokens t JOIN customers c ON c.id = t.principal_id "
        "WHERE c.email = %s AND t.revoked_at IS NOT NULL",
        customer.email,
    )
    assert revoked == [(1,)]


def test_another_customers_transfer_is_not_found(portal_stack: PortalStack, people: Contexts) -> None:
    owner = CustomerFlow(people.page(), portal_stack)
    other = CustomerFlow(people.page(), portal_stack)
    owner.signup("Liam Example")
    other.signup("Mia Example")
    account = owner.open_account("USD", "Main")
    other.page.goto(other.url(f"/accounts/{account}"))
    expect(other.page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(other.page.get_by_role("alert")).to_contain_text("That account does not exist")
    other.page.goto(other.url("/transfers/not-a-uuid"))
    expect(other.page.get_by_role("heading", name="Not found")).to_be_visible()


def test_signup_and_login_errors_are_explained(portal_stack: PortalStack, people: Contexts) -> None:
    first = CustomerFlow(people.page(), portal_stack)
    first.signup("Nora Example")
    p = people.page()
    p.goto(first.url("/signup"))
    p.get_by_label("Full name").fill("Someone Else")
    p.get_by_label("E-mail address").fill(first.email)
    p.get_by_label("Password", exact=True).fill("short")
    p.get_by_label("Repeat the password").fill("different")
    p.get_by_role("button", name="Sign up").click()
    expect(p.locator("#password-error")).to_have_text("Use at least 8 characters.")
    expect(p.locator("#password_confirm-error")).to_have_text("The two passwords differ.")
    expect(p.get_by_label("Full name")).to_have_value("Someone Else")
    p.get_by_label("Password", exact=True).fill("long enough pw")
    p.get_by_label("Repeat the password").fill("long enough pw")
    p.get_by_role("button", name="Sign up").click()
    expect(p.get_by_role("alert")).to_have_text(
        "An account with this e-mail address already exists. Log in instead, or use another address."
    )
    p.goto(first.url("/login"))
    p.get_by_label("E-mail address").fill(first.email)
    p.get_by_label("Password").fill("not the password")
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("alert")).to_have_text("The e-mail address, password or code is not correct.")
