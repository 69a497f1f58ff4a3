"""Payees and standing orders in a real browser: add a payee and confirm it with the code from the
inbox, send to it without a code, the check-digit hint, a standing order set up, approved, listed
for staff and cancelled."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow, number_of
from tests.portal.harness import PortalStack


def test_payee_send_and_standing_order(portal_stack: PortalStack, people: Contexts) -> None:
    alice = CustomerFlow(people.page(), portal_stack)
    bob = CustomerFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    alice.signup("Alice Payer")
    bob.signup("Bob Payee")
    a = alice.open_account("USD", "Everyday")
    b = bob.open_account("USD", "Savings")
    assert re.fullmatch(r"LF\d\d( \d{4}){4}", number_of(b)), number_of(b)
    operator.login("operator")
    # Staff type account numbers too: the deposit form takes one (a typo is caught by its digits).
    ops = operator.page
    ops.goto(operator.url("/deposits"))
    grouped = number_of(a)
    ops.get_by_label("Account number").fill(grouped[:-1] + str((int(grouped[-1]) + 1) % 10))
    ops.get_by_label("Amount").fill("500.00")
    ops.get_by_label("External reference").fill("wire-payees")
    ops.get_by_role("button", name="Deposit").click()
    expect(ops.locator("#account_id-error")).to_contain_text("typing mistake")
    ops.get_by_label("Account number").fill(grouped)
    ops.get_by_role("button", name="Deposit").click()
    expect(ops.get_by_role("status").filter(has_text="Deposited")).to_be_visible()

    payee_id = alice.add_payee("Bob Payee", b)

    # The send form: a typo in a number is pointed out as it is typed (static/account-number.js).
    p = alice.page
    p.goto(alice.url(f"/transfers/new?source={a}"))
    good = number_of(b).replace(" ", "")
    typo = good[:-1] + str((int(good[-1]) + 1) % 10)
    p.get_by_label("To account number").fill(typo)
    expect(p.locator("#account-number-check")).to_contain_text("typing mistake")
    p.get_by_label("To account number").fill(good)
    expect(p.locator("#account-number-check")).to_have_text("Check digits OK.")
    p.get_by_label("To account number").fill("")

    # To the trusted payee: no code asked, straight to the status page.
    p.get_by_label("To a payee").select_option(payee_id)
    p.get_by_label("Amount").fill("40.00")
    p.get_by_role("button", name="Continue").click()
    alice.wait_status("posted")
    expect(p.get_by_role("heading", name="Confirm your transfer")).to_have_count(0)
    assert bob.balance(b, "ledger") == "40.00 USD"

    # A standing order: set up, approved with the code from the inbox, then cancelled.
    p.goto(alice.url("/standing-orders"))
    p.get_by_label("Amount").fill("12.00")
    p.get_by_label("Every").select_option("monthly")
    p.get_by_role("button", name="Set up standing order").click()
    expect(p.get_by_role("status").filter(has_text="We sent a code")).to_be_visible()
    card = p.locator("li[data-order-id]").first
    expect(card.locator('[data-field="order-status"]')).to_have_text("pending otp")
    order_id = card.get_attribute("data-order-id")
    assert order_id
    code = alice.read_code_about("monthly standing order of 12.00 USD", order_id)
    p.goto(alice.url("/standing-orders"))
    card.get_by_label("Code").fill(code)
    card.get_by_role("button", name="Approve standing order").click()
    expect(card.locator('[data-field="order-status"]')).to_have_text("active")
    expect(card).to_contain_text("next payment")
    card.get_by_role("button", name="Cancel standing order").click()
    expect(card.locator('[data-field="order-status"]')).to_have_text("cancelled")

    # Staff see the customer's standing orders.
    [(customer_id,)] = portal_stack.sql("SELECT id FROM customers WHERE email = %s", alice.email)
    operator.page.goto(operator.url(f"/customers/{customer_id}"))
    orders = operator.page.locator("#standing-orders")
    expect(orders).to_contain_text("12.00 USD")
    expect(orders.locator('[data-field="order-status"]')).to_have_text("cancelled")
