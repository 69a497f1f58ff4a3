"""Limits in both portals, in a real browser: an operator sets a customer's limits on the
customer's page (If-Match from the page), and the customer sees them, with what is left
today, on the accounts page."""

from __future__ import annotations

import json

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


def test_admin_sets_default_limits_and_a_rule_others_only_read(portal_stack: PortalStack, people: Contexts) -> None:
    """The "Limits & risk" page: an admin sets a currency's default limits (If-Match from the
    page) and changes a fraud rule (audited); bad parameters are refused with a message and
    change nothing; an operator reads the rules, with neither the defaults nor any form."""
    ops = OpsFlow(people.page(), portal_stack)
    ops.login("admin")
    p = ops.page
    p.goto(ops.url("/risk"))
    defaults = p.locator("form[data-form=limits]")
    defaults.get_by_label("Currency").fill("CHF")
    defaults.get_by_label("Per transfer (minor units)").fill("123456")
    defaults.get_by_role("button", name="Save limits for this currency").click()
    expect(p.get_by_role("status")).to_have_text("The CHF default limits are saved.")
    expect(p.locator('[data-field="limits"] tr[data-currency="CHF"]')).to_contain_text("1,234.56")
    stored = portal_stack.sql("SELECT limits FROM limit_sets WHERE scope = 'default'")[0][0]
    assert {"currency": "CHF", "per_transfer_max_minor": 123456} in [
        {k: v for k, v in item.items() if v is not None} for item in stored
    ]

    velocity = p.locator("form[data-form=rule-velocity]")
    before = velocity.get_by_label("Parameters (JSON)").input_value()
    velocity.get_by_label("Parameters (JSON)").fill("{not json")
    velocity.get_by_role("button", name="Save the velocity rule").click()
    expect(p.get_by_role("alert")).to_contain_text("velocity: the parameters are not valid JSON.")
    velocity.get_by_label("Parameters (JSON)").fill('{"count": 0, "window_s": 60}')
    velocity.get_by_role("button", name="Save the velocity rule").click()
    expect(p.get_by_role("alert")).to_contain_text("velocity:")
    assert portal_stack.sql("SELECT params FROM risk_rules WHERE name = 'velocity'")[0][0] == json.loads(before)

    velocity.get_by_label("Parameters (JSON)").fill('{"count": 1000, "window_s": 60}')
    velocity.get_by_role("button", name="Save the velocity rule").click()
    expect(p.get_by_role("status")).to_contain_text("The velocity rule is saved")
    expect(p.locator('[data-field="rules"] tr[data-rule="velocity"]')).to_contain_text('"count": 1000')
    assert (
        portal_stack.sql("SELECT count(*) FROM audit_log WHERE action = 'risk.rule_set' AND target_id = 'velocity'")[0][
            0
        ]
        >= 1
    )

    operator = OpsFlow(people.page(), portal_stack)
    operator.login("operator")
    o = operator.page
    o.goto(operator.url("/risk"))
    expect(o.locator('[data-field="rules"] tr[data-rule="velocity"]')).to_contain_text('"count": 1000')
    expect(o.get_by_role("heading", name="Default limits")).to_have_count(0)
    expect(o.locator("form[data-form^=rule-], form[data-form=limits]")).to_have_count(0)

    # Put both back as they were, through the page: the stack is shared with other tests.
    velocity.get_by_label("Parameters (JSON)").fill(before)
    velocity.get_by_role("button", name="Save the velocity rule").click()
    expect(p.get_by_role("status")).to_contain_text("The velocity rule is saved")
    defaults.get_by_label("Currency").fill("CHF")
    defaults.get_by_role("button", name="Save limits for this currency").click()
    expect(p.get_by_role("status")).to_have_text("The CHF default limits are removed.")
