"""Staff read a transfer in the real Temporal Web UI, through the ops portal; nobody else can.

The UI is served at /ops/temporal/ under the staff login, and its remote codec is the
same-origin /ops/temporal-codec, which hands the payloads to the API with the session's token
(portal/temporal_ui.py). Payloads are encrypted at the server (security/codec.py), so what a
browser shows decoded can only have come through that codec.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from temporalio.client import Client

from config.settings import TEMPORAL_UI_CODEC_PATH, TEMPORAL_UI_PATH
from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow
from tests.portal.harness import PortalStack

PASSWORD = "correct horse battery"


class Customer:
    """A customer driven through the JSON API (the browser part of this test is the staff's)."""

    def __init__(self, stack: PortalStack) -> None:
        self.http = httpx.Client(base_url=stack.base_url, timeout=30)
        email = f"ui-{uuid.uuid4().hex[:8]}@example.test"
        self.http.post("/v1/signup", json={"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"})
        token = self.http.post("/v1/auth/token", data={"username": email, "password": PASSWORD}).json()
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"

    def open_account(self, currency: str) -> str:
        answer = self.http.post("/v1/accounts", json={"currency": currency})
        assert answer.status_code == 201, answer.text
        account_id: str = answer.json()["id"]
        return account_id

    def transfer(self, source: str, destination: str, amount_minor: int, description: str) -> httpx.Response:
        body = {
            "source_account_id": source,
            "destination_account_id": destination,
            "amount_minor": amount_minor,
            "currency": "USD",
            "description": description,
        }
        return self.http.post("/v1/transfers", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def code_for(self, transfer_id: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in self.http.get("/v1/notifications").json()["items"]:
                if item.get("transfer_id") == transfer_id:
                    body: str = item["body"]
                    return next(w for w in body.replace(".", " ").split() if w.isdigit() and len(w) == 6)
            time.sleep(0.3)
        raise AssertionError(f"no OTP message for {transfer_id}")

    def wait_status(self, transfer_id: str, status: str, timeout_s: float = 45) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body: dict[str, Any] = self.http.get(f"/v1/transfers/{transfer_id}").json()
            if body["status"] == status or time.monotonic() > deadline:
                assert body["status"] == status, body
                return body
            time.sleep(0.3)


@pytest.fixture(scope="module")
def transfers(portal_stack: PortalStack, browser: Any) -> dict[str, str]:
    """One posted transfer and one refused for want of funds, with markers to look for."""
    customer = Customer(portal_stack)
    source, destination = customer.open_account("USD"), customer.open_account("USD")
    context = browser.new_context()
    try:
        ops = OpsFlow(context.new_page(), portal_stack)
        ops.login("operator")
        ops.deposit(source, "100.00")
    finally:
        context.close()
    marker = f"ui-proof-{uuid.uuid4().hex[:10]}"
    created = customer.transfer(source, destination, 1234, marker)
    assert created.status_code == 201, created.text
    posted_id = created.json()["id"]
    answer = customer.http.post(f"/v1/transfers/{posted_id}/otp", json={"code": customer.code_for(posted_id)})
    assert answer.status_code == 200, answer.text
    customer.wait_status(posted_id, "posted")
    refused = customer.transfer(source, destination, 999_999, "too much")
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds", refused.text
    # A refused transfer has no row of its own, only its workflow: find it by its search attributes.
    customer_id = customer.http.get("/v1/me").json()["customer_id"]
    # Its own thread: Playwright's sync API already runs an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        failed = pool.submit(asyncio.run, _failed_workflow(portal_stack, customer_id)).result()
    return {"posted": posted_id, "marker": marker, "source": source, "failed": failed}


async def _failed_workflow(stack: PortalStack, customer_id: str) -> str:
    client = await Client.connect(stack.settings.temporal_address, namespace=stack.settings.temporal_namespace)
    query = f'CustomerId = "{customer_id}" AND TransferStatus = "failed"'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async for execution in client.list_workflows(query):
            return execution.id.removeprefix("transfer-")
        await asyncio.sleep(0.5)
    raise AssertionError("the refused transfer's workflow is not visible")


def _workflow_url(base_url: str, transfer_id: str) -> str:
    return f"{base_url}{TEMPORAL_UI_PATH}/namespaces/default/workflows/transfer-{transfer_id}"


def _expand_event(page: Page, activity_type: str) -> None:
    """Open a local activity's marker in the event history (its details hold the result or failure)."""
    row = page.locator("tr", has_text=activity_type).first
    expect(row).to_be_visible(timeout=60_000)
    row.click()


def test_staff_read_input_result_activity_results_and_failures(
    portal_stack: PortalStack, people: Contexts, transfers: dict[str, str]
) -> None:
    page = people.page()
    OpsFlow(page, portal_stack).login("auditor")
    page.goto(_workflow_url(portal_stack.base_url, transfers["posted"]))
    # The workflow's input (the transfer request) and its result, decoded.
    expect(page.get_by_text(transfers["marker"]).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text(transfers["source"]).first).to_be_visible()
    # A step's result: the posting's ledger transaction.
    _expand_event(page, "post_transfer")
    expect(page.get_by_text("transaction_id").first).to_be_visible(timeout=30_000)
    # A step's failure message (encoded attributes, encrypted like any payload).
    page.goto(_workflow_url(portal_stack.base_url, transfers["failed"]))
    _expand_event(page, "initiate_transfer")
    expect(page.get_by_text(f"insufficient funds in account {transfers['source']}").first).to_be_visible(timeout=30_000)


def test_nobody_else_sees_a_decoded_payload(
    portal_stack: PortalStack, people: Contexts, transfers: dict[str, str], temporal_ui_port: int
) -> None:
    base = portal_stack.base_url
    posted = transfers["posted"]

    # Anonymous, and a signed-in customer: the ops login page, and the UI's data and the codec
    # answer 401 (the customer's cookie is scoped to /portal and never reaches /ops).
    anonymous = people.page()
    customer = people.page()
    CustomerFlow(customer, portal_stack).signup("Eve Mallory")
    for page in (anonymous, customer):
        page.goto(_workflow_url(base, posted))
        expect(page).to_have_url(re.compile(r"/ops/login\?next=%2Fops%2Ftemporal%2F"))
        data = page.request.get(f"{base}{TEMPORAL_UI_PATH}/api/v1/namespaces/default/workflows/transfer-{posted}")
        assert data.status == 401
        codec = page.request.post(
            f"{base}{TEMPORAL_UI_CODEC_PATH}/decode", data={"payloads": []}, headers={"Origin": base}
        )
        assert codec.status == 401

    # The UI server on its own port has the history but no codec session: ciphertext only.
    ui = f"http://127.0.0.1:{temporal_ui_port}"
    described = httpx.get(f"{ui}{TEMPORAL_UI_PATH}/api/v1/namespaces/default/workflows/transfer-{posted}").json()
    run_id = described["workflowExecutionInfo"]["execution"]["runId"]
    direct = people.page()
    direct.goto(f"{ui}{TEMPORAL_UI_PATH}/namespaces/default/workflows/transfer-{posted}/{run_id}/history")
    expect(direct.get_by_text(f"transfer-{posted}").first).to_be_visible(timeout=60_000)
    expect(direct.get_by_text("Codec Server could not connect").first).to_be_attached(timeout=60_000)
    expect(direct.locator("tr", has_text="post_transfer").first).to_be_visible(timeout=60_000)
    text = direct.inner_text("body")
    assert transfers["marker"] not in text and transfers["source"] not in text


def test_the_ui_is_read_only_through_the_portal(portal_stack: PortalStack, people: Contexts) -> None:
    page = people.page()
    OpsFlow(page, portal_stack).login("admin")
    base = portal_stack.base_url
    terminate = page.request.post(
        f"{base}{TEMPORAL_UI_PATH}/api/v1/namespaces/default/workflows/transfer-x/terminate", data={}
    )
    assert terminate.status == 405 and terminate.headers["allow"] == "GET, HEAD"
    settings = page.request.get(f"{base}{TEMPORAL_UI_PATH}/api/v1/settings").json()
    assert settings["DisableWriteActions"] is True and settings["WorkflowResetDisabled"] is True
