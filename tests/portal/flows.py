"""Browser flows shared by the portal tests and scripts/screenshots.py (Playwright, sync API)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from playwright.sync_api import Page, expect

from tests.portal.harness import PortalStack

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Account id -> the number its owner reads on the accounts page (what people type to pay it).
NUMBERS: dict[str, str] = {}


def number_of(account_id: str) -> str:
    """The account's number as its owner's page prints it (grouped in fours)."""
    return NUMBERS[account_id]


@dataclass
class CustomerFlow:
    page: Page
    stack: PortalStack
    email: str = ""
    password: str = ""

    def url(self, path: str) -> str:
        return f"{self.stack.base_url}/portal{path}"

    def signup(self, name: str) -> None:
        self.email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:8]}@example.test"
        self.password = "correct horse battery"
        p = self.page
        p.goto(self.url("/signup"))
        p.get_by_label("Full name").fill(name)
        p.get_by_label("E-mail address").fill(self.email)
        p.get_by_label("Password", exact=True).fill(self.password)
        p.get_by_label("Repeat the password").fill(self.password)
        p.get_by_role("button", name="Sign up").click()
        expect(p.get_by_role("heading", name="Your accounts")).to_be_visible()

    def login(self) -> None:
        p = self.page
        p.goto(self.url("/login"))
        p.get_by_label("E-mail address").fill(self.email)
        p.get_by_label("Password").fill(self.password)
        p.get_by_role("button", name="Log in").click()
        expect(p.get_by_role("heading", name="Your accounts")).to_be_visible()

    def open_account(self, currency: str, label: str) -> str:
        p = self.page
        p.goto(self.url("/accounts"))
        p.get_by_label("Currency").select_option(currency)
        p.get_by_label("Name (optional)").fill(label)
        p.get_by_role("button", name="Open account").click()
        expect(p.get_by_role("status").filter(has_text=f"Your {currency} account is open")).to_be_visible()
        row = p.locator("tr[data-account-id]").filter(has=p.get_by_role("link", name=label, exact=True))
        account_id = row.get_attribute("data-account-id")
        assert account_id
        NUMBERS[account_id] = row.locator(".account-number").inner_text()
        return account_id

    def balance(self, account_id: str, field: str = "available") -> str:
        self.page.goto(self.url("/accounts"))
        return self.page.locator(f'tr[data-account-id="{account_id}"] [data-field="{field}"]').inner_text()

    def start_transfer(self, source: str, destination: str, amount: str, currency: str, note: str = "") -> str:
        p = self.page
        p.goto(self.url(f"/transfers/new?source={source}"))
        p.get_by_label("To account number").fill(number_of(destination))
        p.get_by_label("Amount").fill(amount)
        p.get_by_label("Currency").select_option(currency)
        if note:
            p.get_by_label("Note for the payee (optional)").fill(note)
        p.get_by_role("button", name="Continue").click()
        expect(p.get_by_role("heading", name="Confirm your transfer")).to_be_visible()
        match = re.search(rf"/portal/transfers/({_UUID})$", p.url)
        assert match, p.url
        return match.group(1)

    def read_otp(self, transfer_id: str, timeout_s: float = 30) -> str:
        """The code, read from the inbox page as a customer would (the relay's notifier writes
        it there); from the outbox row only when the relay could not run."""
        if not self.stack.relay_running:
            return self.stack.otp_from_outbox(transfer_id)
        message = self.page.locator(f'li[data-transfer-id="{transfer_id}"] .message-body')
        deadline = time.monotonic() + timeout_s
        while True:
            self.page.goto(self.url("/inbox"))
            if message.count():
                match = re.search(r"\b(\d{6})\b", message.first.inner_text())
                assert match, "no code in the inbox message"
                return match.group(1)
            if time.monotonic() > deadline:
                raise AssertionError(f"no inbox message for transfer {transfer_id}")
            time.sleep(0.3)

    def read_code_about(self, text: str, challenge_id: str, timeout_s: float = 30) -> str:
        """The code of the newest inbox message whose body mentions `text` (a payee's name, a
        standing order's amount): messages not about a transfer. From the outbox row of the
        challenge (payee or order id) only when the relay could not run."""
        if not self.stack.relay_running:
            return self.stack.otp_from_outbox(challenge_id)
        message = self.page.locator("li.message .message-body").filter(has_text=text)
        deadline = time.monotonic() + timeout_s
        while True:
            self.page.goto(self.url("/inbox"))
            if message.count():
                match = re.search(r"\b(\d{6})\b", message.first.inner_text())
                assert match, "no code in the inbox message"
                return match.group(1)
            if time.monotonic() > deadline:
                raise AssertionError(f"no inbox message about {text!r}")
            time.sleep(0.3)

    def add_payee(self, name: str, account_id: str) -> str:
        """Add a payee by the account's number and confirm it with the code from the inbox."""
        p = self.page
        p.goto(self.url("/payees"))
        p.get_by_label("Payee name").fill(name)
        p.get_by_label("Account number").fill(number_of(account_id))
        expect(p.locator("#account-number-check")).to_have_text("Check digits OK.")
        p.get_by_role("button", name="Add payee").click()
        expect(p.get_by_role("status").filter(has_text=f"confirm {name}")).to_be_visible()
        card = p.locator("li[data-payee-id]").filter(has_text=name)
        payee_id = card.get_attribute("data-payee-id")
        assert payee_id
        code = self.read_code_about(name, payee_id)
        p.goto(self.url("/payees"))
        card.get_by_label("Code").fill(code)
        card.get_by_role("button", name="Confirm payee").click()
        expect(p.get_by_role("status").filter(has_text=f"{name} is now a trusted payee")).to_be_visible()
        expect(card.locator('[data-field="payee-status"]')).to_have_text("trusted")
        return payee_id

    def enter_otp(self, transfer_id: str, code: str) -> None:
        p = self.page
        p.goto(self.url(f"/transfers/{transfer_id}"))
        p.get_by_label("Code", exact=True).fill(code)
        p.get_by_role("button", name="Confirm transfer").click()

    def wait_status(self, status: str, timeout_s: float = 45) -> None:
        """The status page's poller (static/poll.js) brings the final status without a reload."""
        panel = self.page.locator("#transfer-status")
        expect(panel).to_have_attribute("data-status", status, timeout=timeout_s * 1000)


@dataclass
class OpsFlow:
    page: Page
    stack: PortalStack

    def url(self, path: str) -> str:
        return f"{self.stack.base_url}/ops{path}"

    def login(self, who: str) -> None:
        email, password = self.stack.staff[who]
        p = self.page
        p.goto(self.url("/login"))
        p.get_by_label("Staff e-mail").fill(email)
        p.get_by_label("Password").fill(password)
        p.get_by_label("Authentication code").fill(self.stack.totp_code(who))
        p.get_by_role("button", name="Log in").click()
        expect(p.get_by_role("heading", name="Transfers")).to_be_visible()

    def deposit(self, account_id: str, amount: str, reference: str = "") -> None:
        p = self.page
        p.goto(self.url(f"/accounts/{account_id}"))
        p.get_by_label(re.compile(r"^Amount")).fill(amount)
        p.get_by_label("External reference").fill(reference or f"wire-{uuid.uuid4().hex[:8]}")
        p.get_by_role("button", name="Deposit").click()
        expect(p.get_by_role("status").filter(has_text="Deposited")).to_be_visible()
