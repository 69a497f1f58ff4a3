"""Two-factor sign-in in a real browser: enrolment from the QR page (the secret read from the
page, the code computed with pyotp), sign-in with a code, a reused code refused, a recovery
code that works once, and staff held to enrolment until they have set it up."""

from __future__ import annotations

import uuid

import pyotp
from playwright.sync_api import Page, expect

from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow
from tests.portal.harness import STAFF_PASSWORD, PortalStack
from tests.totp_auth import Authenticator


def enrol_from_the_qr_page(page: Page, prefix: str) -> tuple[str, list[str]]:
    """Set up TOTP on the portal's Security page; the secret read from the page and the
    recovery codes shown."""
    page.goto(f"{prefix}/security")
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    # The QR code is inline SVG (no image fetched from anywhere).
    expect(page.locator("figure.qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    assert secret and page.locator("#totp-secret").inner_text() == secret
    page.get_by_label("Code from the app").fill(Authenticator.of(secret).code())
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
    codes = [c.strip() for c in page.locator(".recovery-codes li").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status").filter(has_text="You have logged out")).to_be_visible()


def customer_login(flow: CustomerFlow, code: str) -> None:
    """Password first; the code field appears when the API asks for it; password and code again."""
    p = flow.page
    p.goto(flow.url("/login"))
    expect(p.get_by_label("Authentication code")).to_have_count(0)
    p.get_by_label("E-mail address").fill(flow.email)
    p.get_by_label("Password").fill(flow.password)
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("alert")).to_contain_text("Enter the code from your authenticator app")
    p.get_by_label("Password").fill(flow.password)
    p.get_by_label("Authentication code").fill(code)
    p.get_by_role("button", name="Log in").click()


def test_customer_enrols_signs_in_with_a_code_and_recovery_codes_work_once(
    portal_stack: PortalStack, people: Contexts
) -> None:
    flow = CustomerFlow(people.page(), portal_stack)
    flow.signup("Tess Totp")
    secret, recovery = enrol_from_the_qr_page(flow.page, flow.url(""))
    flow.page.goto(flow.url("/security"))
    expect(flow.page.locator('[data-field="recovery-codes-left"]')).to_have_text("10")
    log_out(flow.page)

    device = Authenticator.of(secret)
    code = device.code()
    customer_login(flow, code)
    expect(flow.page.get_by_role("heading", name="Your accounts")).to_be_visible()
    log_out(flow.page)

    # The same code again (its time step is spent): refused, without saying which factor failed.
    customer_login(flow, code)
    expect(flow.page.get_by_role("alert")).to_contain_text("password or code is not correct")
    expect(flow.page.get_by_role("heading", name="Your accounts")).to_have_count(0)

    # A recovery code works once.
    customer_login(flow, recovery[0])
    expect(flow.page.get_by_role("heading", name="Your accounts")).to_be_visible()
    flow.page.goto(flow.url("/security"))
    expect(flow.page.locator('[data-field="recovery-codes-left"]')).to_have_text("9")
    log_out(flow.page)
    customer_login(flow, recovery[0])
    expect(flow.page.get_by_role("alert")).to_contain_text("password or code is not correct")

    # Signed in again (a fresh code), the customer turns it off with a code.
    customer_login(flow, device.code())
    flow.page.goto(flow.url("/security"))
    flow.page.get_by_label("Code to turn it off").fill(recovery[1])
    flow.page.get_by_role("button", name="Turn off two-factor").click()
    expect(flow.page.locator("#security")).to_have_attribute("data-totp-enabled", "false")
    # The pyotp of the test agrees with the page's secret (RFC 6238 as apps do it).
    assert pyotp.TOTP(secret).verify(pyotp.TOTP(secret).now())


def test_staff_without_totp_may_only_enrol(portal_stack: PortalStack, people: Contexts) -> None:
    from api.seed import create_staff

    email = f"newcomer-{uuid.uuid4().hex[:6]}@ledgerflow.test"
    # What `ledgerflow staff create` does: a pending enrolment whose URI is printed once.
    created = create_staff(portal_stack.database_url, email, STAFF_PASSWORD, "operator", settings=portal_stack.settings)
    ops = OpsFlow(people.page(), portal_stack)
    p = ops.page
    p.goto(ops.url("/login"))
    p.get_by_label("Staff e-mail").fill(email)
    p.get_by_label("Password").fill(STAFF_PASSWORD)
    p.get_by_role("button", name="Log in").click()
    # Straight to the set-up, and every other ops page answers 403 with a link to it.
    expect(p.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    expect(p.get_by_role("status")).to_contain_text("required")
    for path in ("/transfers", "/customers", "/deposits", "/pipeline"):
        response = p.goto(ops.url(path))
        assert response is not None and response.status == 403, path
        expect(p.get_by_role("heading", name="Two-factor authentication required")).to_be_visible()
    p.get_by_role("link", name="Set up two-factor authentication").click()
    secret, _ = enrol_from_the_qr_page(p, ops.url(""))
    # The portal showed the secret `staff create` printed (a pending enrolment is kept).
    assert f"secret={secret}" in created.otpauth_uri
    p.goto(ops.url("/transfers"))
    expect(p.get_by_role("heading", name="Transfers")).to_be_visible()
    log_out(p)

    # From now on the login needs the code.
    p.get_by_label("Staff e-mail").fill(email)
    p.get_by_label("Password").fill(STAFF_PASSWORD)
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("alert")).to_contain_text("Enter the code from your authenticator app")
    code = Authenticator.of(secret).code()
    p.get_by_label("Password").fill(STAFF_PASSWORD)
    p.get_by_label("Authentication code").fill(code)
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("heading", name="Transfers")).to_be_visible()
    log_out(p)
    p.get_by_label("Staff e-mail").fill(email)
    p.get_by_label("Password").fill(STAFF_PASSWORD)
    p.get_by_label("Authentication code").fill(code)
    p.get_by_role("button", name="Log in").click()
    expect(p.get_by_role("alert")).to_contain_text("password or code is not correct")
