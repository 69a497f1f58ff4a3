"""Customer journeys in a real browser: sign up, get funded by an operator, send money with the
OTP read from the inbox, watch the status page finish by itself; cross-currency; OTP lock."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow, number_of
from tests.portal.harness import PortalStack


def test_signup_fund_send_and_post(portal_stack: PortalStack, people: Contexts) -> None:
    alice = CustomerFlow(people.page(), portal_stack)
    bob = CustomerFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    alice.signup("Alice Example")
    bob.signup("Bob Example")
    a = alice.open_account("USD", "Everyday")
    b = bob.open_account("USD", "Savings")

    operator.login("operator")
    operator.deposit(a, "100.00")
    assert alice.balance(a) == "100.00 USD"

    transfer_id = alice.start_transfer(a, b, "25.50", "USD", note="rent share")
    otp = alice.page
    # The OTP step names what the code approves: amount, currency, payee; attempts and time left.
    expect(otp.locator('[data-field="amount"]')).to_have_text("25.50 USD")
    expect(otp.locator('[data-field="currency"]')).to_have_text("USD")
    expect(otp.locator('[data-field="payee"]')).to_have_text(number_of(b))
    expect(otp.locator('[data-field="attempts"]')).to_have_text("5 attempts left")
    expect(otp.locator('[data-field="remaining"]')).to_have_text(re.compile(r"^[45]:\d\d$"))
    # The hold is visible while the transfer waits for its code.
    assert alice.balance(a, "held") == "25.50 USD"
    assert alice.balance(a) == "74.50 USD"

    code = alice.read_otp(transfer_id)
    if portal_stack.relay_running:
        inbox = alice.page.locator(f'li[data-transfer-id="{transfer_id}"]')
        expect(inbox).to_contain_text("25.50 USD")
        expect(inbox).to_contain_text(number_of(b))
    alice.enter_otp(transfer_id, code)
    alice.wait_status("posted")
    status = alice.page.locator("#transfer-status")
    expect(status).to_contain_text("Posted")
    expect(status.locator('[data-field="ledger"]')).to_have_text("74.50 USD")
    expect(status.locator('[data-field="held"]')).to_have_text("0.00 USD")
    assert bob.balance(b, "ledger") == "25.50 USD"

    # The statement: newest first, with the running balance.
    alice.page.goto(alice.url(f"/accounts/{a}"))
    rows = alice.page.locator("table.statement tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("\u221225.50 USD")  # a real minus sign
    expect(rows.nth(0)).to_contain_text("74.50 USD")
    expect(rows.nth(1)).to_contain_text("+100.00 USD")


def test_cross_currency_transfer_with_preview(portal_stack: PortalStack, people: Contexts) -> None:
    carol = CustomerFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    carol.signup("Carol Example")
    usd = carol.open_account("USD", "Dollars")
    eur = carol.open_account("EUR", "Euros")
    operator.login("operator")
    operator.deposit(usd, "200.00")

    p = carol.page
    p.goto(carol.url(f"/transfers/new?source={usd}"))
    p.get_by_label("To account number").fill(number_of(eur))
    p.get_by_label("Amount").fill("50.00")
    # static/transfer-form.js asks the portal for an indicative quote as the customer types.
    preview = p.locator("#fx-preview")
    expect(preview).to_contain_text("You send 50.00 USD")
    expect(preview).to_contain_text(re.compile(r"receives about [\d,]+\.\d\d EUR"))
    expected = preview.locator('[data-preview="destination"]').inner_text()
    p.get_by_role("button", name="Continue").click()
    expect(p.get_by_role("heading", name="Confirm your transfer")).to_be_visible()
    transfer_id = p.url.rsplit("/", 1)[1]

    carol.enter_otp(transfer_id, carol.read_otp(transfer_id))
    carol.wait_status("posted")
    status = p.locator("#transfer-status")
    expect(status).to_contain_text("Payee received")
    expect(status).to_contain_text(re.compile(r"1 USD = [\d.]+ EUR"))
    assert carol.balance(usd, "ledger") == "150.00 USD"
    received = carol.balance(eur, "ledger")
    assert received.endswith(" EUR") and received != "0.00 EUR"
    # The firm quote may differ from the indicative one only if the rate moved meanwhile.
    assert received == expected


def test_wrong_codes_lock_the_transfer(portal_stack: PortalStack, people: Contexts) -> None:
    dave = CustomerFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    dave.signup("Dave Example")
    source = dave.open_account("JPY", "Yen")
    target = dave.open_account("JPY", "Other yen")
    operator.login("operator")
    operator.deposit(source, "5000")
    transfer_id = dave.start_transfer(source, target, "1,200", "JPY")
    expect(dave.page.locator('[data-field="amount"]')).to_have_text("1,200 JPY")
    real = portal_stack.otp_from_outbox(transfer_id)
    wrong = "000000" if real != "000000" else "111111"
    p = dave.page
    for left in (4, 3, 2, 1):
        dave.enter_otp(transfer_id, wrong)
        expect(p.get_by_role("alert")).to_have_text(
            f"That code is not correct. {left} attempt{'s' if left > 1 else ''} left."
        )
        expect(p.locator('[data-field="attempts"]')).to_have_text(f"{left} attempt{'s' if left > 1 else ''} left")
    dave.enter_otp(transfer_id, wrong)
    expect(p.get_by_role("alert").first).to_contain_text("no attempts are left")
    dave.wait_status("failed")
    expect(p.locator('[data-field="failure"]')).to_contain_text("otp_locked")
    # The hold is released: all the money is available again.
    assert dave.balance(source) == "5,000 JPY"
    assert dave.balance(source, "held") == "0 JPY"


def test_double_submit_creates_one_transfer_and_errors_are_explained(
    portal_stack: PortalStack, people: Contexts
) -> None:
    erin = CustomerFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    erin.signup("Erin Example")
    source = erin.open_account("BHD", "Dinars")
    target = erin.open_account("BHD", "More dinars")
    operator.login("operator")
    operator.deposit(source, "10.500")
    assert erin.balance(source) == "10.500 BHD"

    p = erin.page
    p.goto(erin.url(f"/transfers/new?source={source}"))
    # Too much: the API's insufficient_funds becomes a sentence, and the form keeps its values.
    p.get_by_label("To account number").fill(number_of(target))
    p.get_by_label("Amount").fill("20")
    p.get_by_role("button", name="Continue").click()
    expect(p.get_by_role("alert")).to_have_text("Not enough available money in the account for this transfer.")
    expect(p.get_by_label("Amount")).to_have_value("20")
    # Too many decimals for BHD (3) is refused by the portal before the API is asked.
    p.get_by_label("Amount").fill("1.2345")
    p.get_by_role("button", name="Continue").click()
    expect(p.locator("#amount-error")).to_have_text("BHD has at most 3 decimal places.")

    # The same rendering of the form submitted twice (a double click, a resent POST): one transfer.
    p.get_by_label("Amount").fill("1.250")
    form = {
        name: p.locator(f'#transfer-form [name="{name}"]').first.input_value()
        for name in (
            "csrf_token",
            "idempotency_key",
            "source_account_id",
            "destination_account_number",
            "amount",
            "currency",
        )
    }
    posts = [p.request.post(erin.url("/transfers/new"), form={**form, "action": "send"}) for _ in range(2)]
    assert posts[0].url == posts[1].url and "/portal/transfers/" in posts[0].url
    assert portal_stack.sql("SELECT count(*) FROM transfers WHERE source_account_id = %s", source) == [(1,)]
    assert erin.balance(source, "held") == "1.250 BHD"

    # Without the CSRF token the same POST is refused.
    forged = p.request.post(erin.url("/transfers/new"), form={**form, "csrf_token": "forged", "action": "send"})
    assert forged.status == 403 and "Form expired" in forged.text()
