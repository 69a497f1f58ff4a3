"""A bank-style workload over HTTP: customers, accounts in several currencies, deposits,
concurrent transfers in random directions and currencies approved with the OTP read from the
inbox, some cancelled, some approved after a wrong code, and concurrent balance reads."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from chaos.client import Api, ApiError, Counters
from mfa.codes import now_code, secret_of_uri
from stack.ephemeral import EphemeralStack

CURRENCIES = ("USD", "EUR", "GBP")
TERMINAL = {"posted", "failed", "cancelled", "expired", "rejected", "reversed"}
CUSTOMER_PASSWORD = "chaos-password-1"
CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Customer:
    email: str
    token: str
    accounts: dict[str, str]  # currency -> account id
    expired_tokens: set[str] = field(default_factory=set)


@dataclass
class Report:
    attempted: int = 0
    created: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    negative_reads: list[str] = field(default_factory=list)
    balance_reads: int = 0
    transfer_ids: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)  # initiation -> posted
    reviews_approved: int = 0


class Bank:
    def __init__(
        self, api: Api, counters: Counters, seed: int = 7, *, mix: bool = True, admin_totp_uri: str = ""
    ) -> None:
        # mix: also cancel some transfers and send a wrong code first on others (chaos);
        # without it every transfer is approved with the right code (the benchmark).
        self.mix = mix
        # The dev admin's otpauth:// URI (the seed's <home>/secrets/dev-admin-totp): staff sign in
        # with a TOTP code.
        self.admin_totp_uri = admin_totp_uri
        self.api = api
        self.counters = counters
        self.random = random.Random(seed)
        self.customers: list[Customer] = []
        self.staff_token = ""
        self.report = Report()
        self._renewing = asyncio.Lock()
        api.renew = self.renew_token

    async def renew_token(self, expired: str) -> str | None:
        """A fresh token for the customer whose token the API refused (it expired mid-run);
        one sign-in however many of their requests were refused at once."""
        async with self._renewing:
            customer = next((c for c in self.customers if c.token == expired), None)
            if customer is None:
                # Already renewed by another request (it holds the new token now), or not a
                # customer's token at all (the staff token lasts longer than any run).
                return next((c.token for c in self.customers if expired in c.expired_tokens), None)
            answer = await self.api.call(
                "POST", "/v1/auth/token", data={"username": customer.email, "password": CUSTOMER_PASSWORD}
            )
            customer.expired_tokens.add(customer.token)
            customer.token = answer.json()["access_token"]
            return customer.token

    async def setup(self, customers: int, funding_minor: int) -> None:
        """Sign customers up, open one account per currency each, and fund them (ops deposits)."""
        code = now_code(secret_of_uri(self.admin_totp_uri), datetime.now(UTC))
        token = await self.api.call(
            "POST",
            "/ops/v1/auth/token",
            data={"username": "admin@ledgerflow.local", "password": "admin-password", "totp": code},
        )
        self.staff_token = token.json()["access_token"]

        async def one(i: int) -> Customer:
            email = f"c{i}-{uuid.uuid4().hex[:8]}@chaos.test"
            await self.api.call(
                "POST", "/v1/signup", json={"email": email, "password": CUSTOMER_PASSWORD, "full_name": f"C {i}"}
            )
            tok = (
                await self.api.call("POST", "/v1/auth/token", data={"username": email, "password": CUSTOMER_PASSWORD})
            ).json()["access_token"]
            accounts = {}
            for currency in CURRENCIES:
                acc = await self.api.call("POST", "/v1/accounts", token=tok, json={"currency": currency})
                accounts[currency] = acc.json()["id"]
                await self.api.call(
                    "POST",
                    "/ops/v1/deposits",
                    token=self.staff_token,
                    idempotent=True,
                    json={
                        "account_id": accounts[currency],
                        "amount_minor": funding_minor,
                        "currency": currency,
                        "external_reference": f"chaos-{uuid.uuid4().hex}",
                    },
                )
            return Customer(email, tok, accounts)

        gate = asyncio.Semaphore(8)

        async def gated(i: int) -> Customer:
            async with gate:
                return await one(i)

        self.customers = list(await asyncio.gather(*(gated(i) for i in range(customers))))

    async def otp_code(self, customer: Customer, transfer_id: str, timeout_s: float = 180) -> str | None:
        """Read the OTP from the customer's in-app inbox (delivered by the relay's notifier)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            page = (await self.api.call("GET", "/v1/notifications?limit=200", token=customer.token)).json()
            for note in page["items"]:
                if note.get("transfer_id") == transfer_id:
                    # The inbox shows the code only while it can be used; a masked one (used,
                    # cancelled, expired before the message arrived) never comes back.
                    match = CODE.search(note["body"])
                    return match.group(1) if match else None
            await asyncio.sleep(0.2)
        return None

    async def transfer(self, max_amount_minor: int, min_amount_minor: int = 1) -> None:
        rnd = self.random
        source, destination = rnd.sample(self.customers, 2) if len(self.customers) > 1 else (self.customers[0],) * 2
        src_ccy, dst_ccy = rnd.choice(CURRENCIES), rnd.choice(CURRENCIES)
        if source is destination and src_ccy == dst_ccy:
            dst_ccy = next(c for c in CURRENCIES if c != src_ccy)
        body = {
            "source_account_id": source.accounts[src_ccy],
            "destination_account_id": destination.accounts[dst_ccy],
            "amount_minor": rnd.randint(min_amount_minor, max_amount_minor),
            "currency": rnd.choice([src_ccy, dst_ccy]),
        }
        self.report.attempted += 1
        t0 = time.monotonic()
        try:
            # Sometimes a short client timeout: the request may complete server-side while
            # the client gives up and retries with the same key.
            created = await self.api.call(
                "POST",
                "/v1/transfers",
                token=source.token,
                json=body,
                idempotent=True,
                timeout_s=0.3 if rnd.random() < 0.1 else None,
            )
        except ApiError as err:
            self.report.outcomes[f"refused:{err.code}"] += 1
            return
        transfer_id = created.json()["id"]
        self.report.created += 1
        self.report.transfer_ids.append(transfer_id)
        action = rnd.random() if self.mix else 1.0
        if action < 0.05:
            await self._ignore_errors(self.api.call("POST", f"/v1/transfers/{transfer_id}/cancel", token=source.token))
        else:
            code = await self.otp_code(source, transfer_id)
            if code is not None:
                if action < 0.10:
                    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
                    await self._ignore_errors(self._submit(source, transfer_id, wrong))
                await self._ignore_errors(self._submit(source, transfer_id, code))
        status = await self.wait_terminal(source, transfer_id)
        self.report.outcomes[status] += 1
        if status == "posted":
            self.report.latencies_s.append(time.monotonic() - t0)

    async def _submit(self, customer: Customer, transfer_id: str, code: str) -> None:
        await self.api.call("POST", f"/v1/transfers/{transfer_id}/otp", token=customer.token, json={"code": code})

    @staticmethod
    async def _ignore_errors(call: object) -> None:
        """A refused or unanswered OTP/cancel call: the transfer's status tells what happened."""
        with contextlib.suppress(ApiError, httpx.HTTPError):
            await call  # type: ignore[misc]

    async def wait_terminal(self, customer: Customer, transfer_id: str, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            transfer = (await self.api.call("GET", f"/v1/transfers/{transfer_id}", token=customer.token)).json()
            if transfer["status"] in TERMINAL:
                status = str(transfer["status"])
                return f"failed:{transfer['failure_reason']}" if status == "failed" else status
            await asyncio.sleep(0.25)
        return "stuck"

    async def set_default_limits(self, limits: list[dict[str, object]]) -> None:
        """Replace the default transfer limits (admin, If-Match on the version read first)."""
        current = await self.api.call("GET", "/ops/v1/limits/defaults", token=self.staff_token)
        await self.api.call(
            "PUT",
            "/ops/v1/limits/defaults",
            token=self.staff_token,
            json={"limits": limits},
            headers={"If-Match": current.headers["ETag"]},
        )

    async def review_queue(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """An approver working the review queue: every transfer that risk review (or the
        amount) sent to `in_review` is approved, so it can end (posted) and the run drains."""
        while not stop.is_set():
            with contextlib.suppress(ApiError, httpx.HTTPError):
                page = await self.api.call(
                    "GET", "/ops/v1/transfers?status=in_review&limit=200", token=self.staff_token
                )
                for item in page.json()["items"]:
                    with contextlib.suppress(ApiError, httpx.HTTPError):
                        await self.api.call(
                            "POST",
                            f"/ops/v1/transfers/{item['id']}/approve",
                            token=self.staff_token,
                            json={"reason": "chaos review"},
                        )
                        self.report.reviews_approved += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    async def read_balances(self, stop: asyncio.Event) -> None:
        """Read random balances until stopped; any negative available balance is a violation."""
        while not stop.is_set():
            customer = self.random.choice(self.customers)
            currency = self.random.choice(CURRENCIES)
            try:
                balance = (
                    await self.api.call(
                        "GET", f"/v1/accounts/{customer.accounts[currency]}/balance", token=customer.token
                    )
                ).json()
            except Exception:  # a read during a fault may fail; only wrong answers matter
                await asyncio.sleep(0.1)
                continue
            self.report.balance_reads += 1
            if balance["available_minor"] < 0 or balance["ledger_minor"] < 0:
                self.report.negative_reads.append(f"{customer.accounts[currency]}: {balance}")
            await asyncio.sleep(0.02)

    async def run_transfers(self, count: int, in_flight: int, max_amount_minor: int, min_amount_minor: int = 1) -> None:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                await self.transfer(max_amount_minor, min_amount_minor)

        await asyncio.gather(*(one() for _ in range(count)))


def dev_admin_totp_uri(stack: EphemeralStack) -> str:
    """The dev admin's otpauth:// URI that the stack's seed wrote under its home."""
    from api.seed import dev_admin_totp_path

    return dev_admin_totp_path(stack.settings.home.resolve()).read_text().strip()
