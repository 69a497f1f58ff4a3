"""Screenshots of the portals' main pages under docs/screenshots/ (`make screenshots`).

Starts its own throwaway stack (PostgreSQL, Temporal, Kafka on free ports under a temporary
directory, plus the worker, the relay and the app), drives the same browser flows as
tests/portal with headless Chromium (/usr/bin/chromium), and saves one PNG per page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright  # noqa: E402

from tests.portal.flows import CustomerFlow, OpsFlow, number_of  # noqa: E402
from tests.portal.harness import CHROMIUM, CHROMIUM_ARGS, PortalStack, create_database, running_portal  # noqa: E402

DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}


def shoot(page: Page, out: Path, name: str) -> None:
    # Let time.js localise dates and the fonts settle before the picture.
    page.wait_for_load_state("networkidle")
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"  {path.relative_to(REPO)}")


def drive(stack: PortalStack, out: Path) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context_args = {"viewport": DESKTOP, "locale": "en-GB", "timezone_id": "Europe/Zurich"}
        alice = CustomerFlow(browser.new_context(**context_args).new_page(), stack)  # type: ignore[arg-type]
        bob = CustomerFlow(browser.new_context(**context_args).new_page(), stack)  # type: ignore[arg-type]
        operator = OpsFlow(browser.new_context(**context_args).new_page(), stack)  # type: ignore[arg-type]
        approver = OpsFlow(browser.new_context(**context_args).new_page(), stack)  # type: ignore[arg-type]

        alice.signup("Alice Martin")
        bob.signup("Bob Keller")
        usd = alice.open_account("USD", "Everyday")
        eur = alice.open_account("EUR", "Travel")
        jpy = alice.open_account("JPY", "Tokyo trip")
        bob_usd = bob.open_account("USD", "Main")
        operator.login("operator")
        operator.deposit(usd, "25,000.00")
        operator.deposit(jpy, "120000")

        # A same-currency transfer, all the way to posted.
        t1 = alice.start_transfer(usd, bob_usd, "125.00", "USD", note="Concert tickets")
        shoot(alice.page, out, "customer-transfer-otp")
        alice.enter_otp(t1, alice.read_otp(t1))
        alice.wait_status("posted")
        shoot(alice.page, out, "customer-transfer-status")

        # Cross-currency, with the indicative preview on the form.
        p = alice.page
        p.goto(alice.url(f"/transfers/new?source={usd}"))
        p.get_by_label("To account number").fill(number_of(eur))
        p.get_by_label("Amount").fill("300.00")
        expect(p.locator("#fx-preview")).to_contain_text("receives about")
        shoot(p, out, "customer-transfer-new-fx")
        p.get_by_role("button", name="Continue").click()
        t2 = p.url.rsplit("/", 1)[1]
        alice.enter_otp(t2, alice.read_otp(t2))
        alice.wait_status("posted")

        # A large one that waits in the review queue.
        t3 = alice.start_transfer(usd, bob_usd, "12,500.00", "USD", note="Car")
        alice.enter_otp(t3, alice.read_otp(t3))
        expect(alice.page.locator("#transfer-status")).to_have_attribute("data-status", "in_review")

        alice.page.goto(alice.url("/inbox"))
        shoot(alice.page, out, "customer-inbox")
        alice.page.goto(alice.url("/accounts"))
        shoot(alice.page, out, "customer-accounts")
        alice.page.goto(alice.url(f"/accounts/{usd}"))
        shoot(alice.page, out, "customer-statement")

        phone = CustomerFlow(browser.new_context(viewport=PHONE, locale="en-GB").new_page(), stack)
        phone.email, phone.password = alice.email, alice.password
        phone.login()
        shoot(phone.page, out, "customer-accounts-phone")

        # Payees and standing orders (issue #18).
        payee_id = alice.add_payee("Bob Keller", bob_usd)
        alice.page.goto(alice.url("/payees"))
        shoot(alice.page, out, "customer-payees")
        p.goto(alice.url(f"/transfers/new?source={usd}&payee={payee_id}"))
        p.get_by_label("Amount").fill("60.00")
        shoot(p, out, "customer-transfer-new-payee")
        p.goto(alice.url("/standing-orders"))
        p.get_by_label("Amount").fill("250.00")
        p.get_by_label("Every").select_option("monthly")
        p.get_by_label("Note for the payee (optional)").fill("Rent")
        p.get_by_role("button", name="Set up standing order").click()
        card = p.locator("li[data-order-id]").first
        order_id = card.get_attribute("data-order-id") or ""
        code = alice.read_code_about("monthly standing order of 250.00 USD", order_id)
        p.goto(alice.url("/standing-orders"))
        card.get_by_label("Code").fill(code)
        card.get_by_role("button", name="Approve standing order").click()
        expect(card.locator('[data-field="order-status"]')).to_have_text("active")
        shoot(p, out, "customer-standing-orders")
        [(alice_id,)] = stack.sql("SELECT id FROM customers WHERE email = %s", alice.email)
        operator.page.goto(operator.url(f"/customers/{alice_id}"))
        shoot(operator.page, out, "ops-customer-standing-orders")

        operator.page.goto(operator.url("/transfers"))
        shoot(operator.page, out, "ops-transfers")
        operator.page.goto(operator.url(f"/transfers/{t2}"))
        shoot(operator.page, out, "ops-transfer-detail")
        operator.page.goto(operator.url(f"/accounts/{usd}"))
        shoot(operator.page, out, "ops-account")

        # A reversal requested by the operator, waiting for a second staff member.
        operator.page.goto(operator.url(f"/transfers/{t1}"))
        operator.page.get_by_label("Reason").fill("Duplicate payment reported by the customer")
        operator.page.get_by_role("button", name="Request reversal").click()

        approver.login("approver")
        approver.page.goto(approver.url("/review"))
        shoot(approver.page, out, "ops-review-queue")
        approver.page.goto(approver.url("/reversals"))
        shoot(approver.page, out, "ops-reversals")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from ledger.migrate import upgrade
    from stack.ephemeral import EphemeralStack

    with tempfile.TemporaryDirectory(prefix="ledgerflow-shots-") as tmp:
        home = Path(tmp)
        infra = EphemeralStack(home / "stack")
        try:
            print("starting PostgreSQL, Temporal and Kafka ...")
            pg = infra.postgres()
            temporal = infra.temporal()
            kafka = infra.kafka()
            url = create_database(pg)
            upgrade(url)
            with running_portal(url, temporal, kafka, home) as stack:
                if not stack.relay_running:
                    print("relay did not start: OTP codes are read from the outbox instead of the inbox")
                print(f"portal at {stack.base_url}; saving screenshots:")
                drive(stack, args.out)
        finally:
            infra.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
