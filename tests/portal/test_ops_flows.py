"""Staff journeys in a real browser: freeze with a stale page, the review queue, reversals with
a second approver, roles (nav and forced pages), FX rates, reconciliation, the audit log."""

from __future__ import annotations

import inspect
import re

import pytest
from playwright.sync_api import Page, expect

from tests.portal.conftest import Contexts
from tests.portal.flows import CustomerFlow, OpsFlow, number_of
from tests.portal.harness import PortalStack


def _posted_transfer(
    stack: PortalStack, people: Contexts, operator: OpsFlow, amount: str = "10.00"
) -> tuple[CustomerFlow, str, str]:
    customer = CustomerFlow(people.page(), stack)
    customer.signup("Frank Example")
    source = customer.open_account("USD", "Main")
    target = customer.open_account("USD", "Second")
    operator.deposit(source, "50.00")
    transfer_id = customer.start_transfer(source, target, amount, "USD")
    customer.enter_otp(transfer_id, customer.read_otp(transfer_id))
    customer.wait_status("posted")
    return customer, source, transfer_id


def test_freeze_with_a_stale_page_shows_the_conflict(portal_stack: PortalStack, people: Contexts) -> None:
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Grace Example")
    account = customer.open_account("EUR", "Main")
    first, second = OpsFlow(people.page(), portal_stack), OpsFlow(people.page(), portal_stack)
    first.login("operator")
    second.login("operator2")
    for ops in (first, second):
        ops.page.goto(ops.url(f"/accounts/{account}"))
        expect(ops.page.locator('[data-field="status"]')).to_have_text("active")

    first.page.get_by_role("button", name="Freeze account").click()
    expect(first.page.get_by_role("status")).to_have_text("The account is now frozen.")
    expect(first.page.locator('[data-field="status"]')).to_have_text("frozen")

    # The second operator's page still shows version 1: If-Match fails and the page says so.
    second.page.get_by_role("button", name="Freeze account").click()
    expect(second.page.locator('[data-field="conflict"]')).to_contain_text("Someone else changed this account — reload")
    second.page.get_by_role("link", name="Reload").click()
    expect(second.page.locator('[data-field="status"]')).to_have_text("frozen")

    # Frozen means frozen: the customer cannot send from it, and is told why.
    p = customer.page
    p.goto(customer.url(f"/transfers/new?source={account}"))
    p.get_by_label("To account number").fill(number_of(account))
    p.get_by_label("Amount").fill("1")
    p.get_by_role("button", name="Continue").click()
    expect(p.get_by_role("alert")).to_be_visible()

    second.page.get_by_role("button", name="Unfreeze account").click()
    expect(second.page.locator('[data-field="status"]')).to_have_text("active")


def test_review_queue_approve(portal_stack: PortalStack, people: Contexts) -> None:
    operator = OpsFlow(people.page(), portal_stack)
    operator.login("operator")
    customer = CustomerFlow(people.page(), portal_stack)
    customer.signup("Heidi Example")
    source = customer.open_account("USD", "Main")
    target = customer.open_account("USD", "Second")
    operator.deposit(source, "20,000.00")
    transfer_id = customer.start_transfer(source, target, "12,000.00", "USD")
    customer.enter_otp(transfer_id, customer.read_otp(transfer_id))
    expect(customer.page.locator("#transfer-status")).to_have_attribute("data-status", "in_review")
    expect(customer.page.locator("#transfer-status")).to_contain_text("checked by our team")

    # Operators do not review: no nav entry, and the page refuses when opened by hand.
    expect(operator.page.get_by_role("link", name="Review queue")).to_have_count(0)
    operator.page.goto(operator.url("/review"))
    expect(operator.page.get_by_role("heading", name="Not allowed")).to_be_visible()

    # Forcing the decision anyway (a hand-made POST with a valid CSRF token): the API's 403 is
    # shown as a sentence, and nothing changes.
    csrf = operator.page.locator('input[name="csrf_token"]').first.input_value()
    forced = operator.page.request.post(
        operator.url(f"/transfers/{transfer_id}/approve"), form={"csrf_token": csrf, "reason": "me"}
    )
    assert forced.ok and "Your role does not allow this action." in forced.text()

    approver = OpsFlow(people.page(), portal_stack)
    approver.login("approver")
    approver.page.get_by_role("link", name="Review queue").click()
    card = approver.page.locator(f'section[data-transfer-id="{transfer_id}"]')
    card.get_by_label("Reason for approving").fill("known payee")
    card.get_by_role("button", name="Approve").click()
    expect(approver.page.get_by_role("status")).to_contain_text("approved")
    # The customer's status page was polling all along and ends at posted without a reload.
    customer.wait_status("posted")
    assert customer.balance(target, "ledger") == "12,000.00 USD"


def test_transfer_detail_shows_legs_events_and_temporal_link(portal_stack: PortalStack, people: Contexts) -> None:
    auditor = OpsFlow(people.page(), portal_stack)
    operator = OpsFlow(people.page(), portal_stack)
    operator.login("operator")
    customer, _, transfer_id = _posted_transfer(portal_stack, people, operator)
    auditor.login("auditor")
    p = auditor.page
    p.get_by_label("Customer (id or e-mail)").fill(customer.email)
    p.get_by_label("Status").select_option("posted")
    p.get_by_role("button", name="Search").click()
    rows = p.locator("tr[data-transfer-id]")
    expect(rows).to_have_count(1)
    rows.get_by_role("link").first.click()
    link = p.locator('[data-field="temporal-link"]')
    expect(link).to_have_attribute("href", re.compile(rf"/namespaces/default/workflows/transfer-{transfer_id}$"))
    expect(p.locator("tr[data-event-type='transfer.posted']")).to_have_count(1)
    expect(p.get_by_role("heading", name="Ledger legs")).to_be_visible()
    # The relay publishes the outbox: the page shows each event's publish state.
    if portal_stack.relay_running:
        p.reload()
        expect(p.locator("tr[data-event-type='transfer.posted']")).to_contain_text("published")
    # An auditor may read but neither reverse nor deposit.
    expect(p.get_by_role("button", name="Request reversal")).to_have_count(0)


def _has_reversal_routes(page: Page, stack: PortalStack) -> bool:
    response = page.request.post(f"{stack.base_url}/ops/v1/reversals/00000000-0000-0000-0000-000000000000/approve")
    # No route: the API's generic 404 `not_found`; a route answers 401 (no token) instead.
    return response.status != 404 or response.json().get("code") != "not_found"


def test_reversal_needs_a_second_approver(portal_stack: PortalStack, people: Contexts) -> None:
    admin = OpsFlow(people.page(), portal_stack)
    admin.login("admin")
    customer, source, transfer_id = _posted_transfer(portal_stack, people, admin, "10.00")
    p = admin.page
    p.goto(admin.url(f"/transfers/{transfer_id}"))
    p.get_by_label("Reason").fill("customer complaint")
    p.get_by_role("button", name="Request reversal").click()
    if not _has_reversal_routes(p, portal_stack):
        # Handled gracefully until the reversal routes land in the API.
        expect(p.get_by_role("alert")).to_have_text("Reversals are not available on this server yet.")
        pytest.skip(
            "blocked: /ops/v1/transfers/{id}/reversals and /ops/v1/reversals/{id}/approve are not in the API yet"
        )
    expect(p.get_by_role("status")).to_contain_text("requested")
    reversal_id = p.get_by_label("Reversal id").input_value()
    assert reversal_id

    # The requester may not approve their own reversal (admin holds the approver role too).
    p.get_by_role("button", name="Approve reversal").click()
    expect(p.get_by_role("alert")).to_contain_text("A second staff member must approve this")

    approver = OpsFlow(people.page(), portal_stack)
    approver.login("approver")
    approver.page.goto(approver.url(f"/reversals?id={reversal_id}"))
    approver.page.get_by_role("button", name="Approve reversal").click()
    expect(approver.page.get_by_role("status")).to_contain_text("approved")
    assert customer.balance(source, "ledger") == "50.00 USD"


def test_roles_see_only_their_pages(portal_stack: PortalStack, people: Contexts) -> None:
    auditor = OpsFlow(people.page(), portal_stack)
    auditor.login("auditor")
    nav = auditor.page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(
        [
            "Transfers",
            "Customers",
            "FX rates",
            "Limits & risk",
            "Reconciliation",
            "Event pipeline",
            "Audit log",
            "Security",
        ]
    )
    auditor.page.goto(auditor.url("/pipeline"))
    expect(auditor.page.get_by_role("heading", name="Event pipeline")).to_be_visible()
    expect(auditor.page.get_by_text("None: the consumers applied every event.")).to_be_visible()
    expect(auditor.page.get_by_role("heading", name="Relay")).to_be_visible()
    expect(auditor.page.get_by_text("waiting to be published to Kafka")).to_be_visible()
    auditor.page.goto(auditor.url("/deposits"))
    expect(auditor.page.get_by_role("heading", name="Not allowed")).to_be_visible()
    auditor.page.goto(auditor.url("/audit"))
    expect(auditor.page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(auditor.page.locator("tbody tr").first).to_be_visible()

    operator = OpsFlow(people.page(), portal_stack)
    operator.login("operator")
    operator.page.goto(operator.url("/audit"))
    assert "Not allowed" in operator.page.content()
    # The FX page offers editing to admins only; the API refuses anyone else anyway.
    operator.page.goto(operator.url("/fx"))
    expect(operator.page.get_by_role("button", name="Save rate")).to_have_count(0)

    admin = OpsFlow(people.page(), portal_stack)
    admin.login("admin")
    admin.page.goto(admin.url("/fx"))
    row = admin.page.locator('tr[data-pair="USD/EUR"]')
    current = row.get_by_label("Rate").input_value()
    row.get_by_label("Rate").fill(current)
    row.get_by_role("button", name="Save").click()
    expect(admin.page.get_by_role("status")).to_contain_text("USD/EUR is now")

    admin.page.goto(admin.url("/reconciliation"))
    expect(admin.page.get_by_role("heading", name="Reconciliation")).to_be_visible()


def test_reconciliation_run(portal_stack: PortalStack, people: Contexts) -> None:
    import worker.build

    operator = OpsFlow(people.page(), portal_stack)
    operator.login("operator")
    p = operator.page
    p.get_by_role("link", name="Reconciliation").click()
    p.get_by_role("button", name="Run reconciliation now").click()
    if p.get_by_text("Reconciliation is not available on this server yet.").count():
        pytest.skip("blocked: /ops/v1/reconciliation/runs is not in the API yet")
    expect(p.get_by_role("heading", name=re.compile("Reconciliation run"))).to_be_visible()
    if "ReconciliationWorkflow" not in inspect.getsource(worker.build):
        # The run is accepted and shown, but nothing executes it until the worker registers it.
        expect(p.locator('[data-field="run-status"]')).to_have_text(re.compile("queued|running"))
        pytest.skip("blocked: worker/build.py does not register the ReconciliationWorkflow yet")
    # static/poll.js follows the run until it finishes, then the checks are listed.
    expect(p.locator('[data-field="run-status"]')).to_have_text(re.compile("passed|failed"), timeout=60_000)
    expect(p.locator("tbody tr").first).to_be_visible()
    p.get_by_role("link", name="All runs").click()
    expect(p.locator("tbody tr").first).to_be_visible()


def test_event_pipeline_shows_the_last_retention_sweep(portal_stack: PortalStack, people: Contexts) -> None:
    import uuid

    from activities.retention import RetentionActivities
    from ledger.db import make_engine
    from recon.retention import RetentionPolicy
    from recon.retention_io import FinishSweepInput, StartSweepInput, SweepBatchInput

    # A sweep recorded the way the RetentionSweep workflow records it (its activities).
    engine = make_engine(portal_stack.database_url, pool_size=2)
    try:
        sweep, policy, run_id = RetentionActivities(engine), RetentionPolicy(), str(uuid.uuid4())
        for cutoff in sweep.start(StartSweepInput(run_id, "retention-portal-test", policy)).cutoffs:
            sweep.sweep_batch(SweepBatchInput(run_id, cutoff.name, cutoff.cutoff, policy))
        sweep.finish(FinishSweepInput(run_id, "completed"))
    finally:
        engine.dispose()

    auditor = OpsFlow(people.page(), portal_stack)
    auditor.login("auditor")
    auditor.page.goto(auditor.url("/pipeline"))
    section = auditor.page.locator("#retention")
    expect(auditor.page.get_by_role("heading", name="Retention")).to_be_visible()
    expect(section).to_contain_text("Last sweep")
    expect(section).to_contain_text("completed")
    expect(section).to_contain_text("kept 7 days")
    for target in ("outbox", "processed_events", "idempotency_keys", "auth_tokens", "inbox_otp_codes"):
        expect(section.locator("td", has_text=re.compile(f"^{target}$"))).to_have_count(1)
