"""Limits in both portals, in a real browser: an operator sets a customer's limits on the
customer's page (If-Match from the page), and the customer sees them, with what is left
today, on the accounts page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow
from tests.portal.harness import PortalStack


def test_operator_sets_limits_and_the_customer_sees_them(portal_stack: PortalStack, people: Contexts) -> None:
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Lena Limit")
    source = customer.open_account("USD", "Main")
    customer_id = portal_stack.sql("SELECT customer_id FROM accounts WHERE id = %s", source)[0][0]

    ops = OpsFlow(people.page(), portal_stack)
    ops.login("operator")
    p = ops.page
    p.goto(ops.url(f"/customers/{customer_id}"))
    expect(p.get_by_text("No limits of their own")).to_be_visible()
    p.get_by_label("Currency").fill("USD")
    p.get_by_label("Per transfer (minor units)").fill("5000")
    p.get_by_label("Daily total (minor units)").fill("20000")
    p.get_by_role("button", name="Save limits for this currency").click()
    expect(p.get_by_role("status")).to_have_text("The USD limits are saved.")
    row = p.locator('[data-field="limits"] tr[data-currency="USD"]')
    expect(row).to_contain_text("50.00")
    expect(row).to_contain_text("200.00")
    # A letter where a number belongs is refused with a message, nothing saved.
    p.get_by_label("Currency").fill("USD")
    p.get_by_label("Daily total (minor units)").fill("lots")
    p.get_by_role("button", name="Save limits for this currency").click()
    expect(p.get_by_role("alert")).to_contain_text("not valid")

    c = customer.page
    c.goto(customer.url("/accounts"))
    usd = c.locator('[data-field="limits"] tr[data-currency="USD"]')
    expect(usd.locator('[data-field="daily-remaining"]')).to_contain_text("200.00")
