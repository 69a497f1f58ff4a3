"""Standing orders (PSD2 RTS Art. 14) end to end: approved once with a bound OTP, run by their
Temporal Schedule `standing-order-<id>`, one transfer per order per date (invariant 12),
paused, resumed, cancelled, and a run without funds that fails, notifies and lets the order go on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow
from temporalio.service import RPCError, RPCStatusCode

from contracts.standing_order import StandingOrderRunInput
from ledger.standing_orders import run_transfer_id
from tests.api.conftest import Api, bearer, new_key
from tests.api.test_auth import problem
from tests.api.test_payees import trusted_payee, wrong
from tests.api.test_transfers import wait_status
from worker.temporal_client import connect

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def create(http: httpx.Client, token: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return http.post("/v1/standing-orders", json=body, headers=bearer(token) | {"Idempotency-Key": key or new_key()})


def post(http: httpx.Client, token: str, order_id: str, action: str, **body: Any) -> httpx.Response:
    return http.post(f"/v1/standing-orders/{order_id}/{action}", json=body or None, headers=bearer(token))


def get(http: httpx.Client, token: str, order_id: str) -> dict[str, Any]:
    r = http.get(f"/v1/standing-orders/{order_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def trigger_and_finish(api: Api, order_id: str) -> str:
    """Trigger the order's schedule once and wait for that action's run workflow to finish."""
    client = await connect(api.settings)
    handle = client.get_schedule_handle(f"standing-order-{order_id}")
    before = (await handle.describe()).info.num_actions
    await handle.trigger()
    for _ in range(600):
        info = (await handle.describe()).info
        if info.num_actions > before:
            action = info.recent_actions[-1].action
            assert isinstance(action, ScheduleActionExecutionStartWorkflow)
            return str(await client.get_workflow_handle(action.workflow_id).result())
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule took no action")


async def run_directly(api: Api, order_id: str) -> str:
    """One run of the order as its schedule would start it (today's date)."""
    client: Client = await connect(api.settings)
    return str(
        await client.execute_workflow(
            "StandingOrderRun",
            StandingOrderRunInput(standing_order_id=order_id),
            id=f"standing-order-run-{order_id}-test-{uuid.uuid4().hex[:8]}",
            task_queue=api.settings.temporal_task_queue,
            result_type=str,
        )
    )


@pytest.fixture
def setup(api: Api, http: httpx.Client) -> dict[str, Any]:
    _, alice = api.signup(http, "Alice")
    _, bob = api.signup(http, "Bob")
    operator = api.staff(http, "operator")
    a = api.open_account(http, alice)
    b = api.open_account(http, bob)
    api.deposit(http, operator, a, 1_000)
    payee = trusted_payee(api, http, alice, b)
    body = {
        "source_account_id": a["id"],
        "payee_id": payee["id"],
        "amount_minor": 250,
        "currency": "USD",
        "frequency": "daily",
        "start_date": today(),
        "description": "pocket money",
    }
    return {"alice": alice, "bob": bob, "a": a, "b": b, "payee": payee, "body": body}


def approved(api: Api, http: httpx.Client, token: str, body: dict[str, Any]) -> dict[str, Any]:
    r = create(http, token, body)
    assert r.status_code == 201, r.text
    ok = post(http, token, r.json()["id"], "otp", code=api.otp_code(r.json()["id"]))
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "active"
    return dict(ok.json())


def test_approve_once_and_three_triggers_make_one_transfer(api: Api, http: httpx.Client, setup: dict[str, Any]) -> None:
    alice, body = setup["alice"], setup["body"]
    assert http.post("/v1/standing-orders", json=body, headers=bearer(alice)).status_code == 400
    problem(create(http, alice, body | {"start_date": "2020-01-01"}), 422, "validation_error")
    problem(create(http, setup["bob"], body), 404, "account_not_found")

    key = new_key()
    first = create(http, alice, body, key)
    assert first.status_code == 201, first.text
    order = first.json()
    assert (order["status"], order["runs"], order["next_run_at"]) == ("pending_otp", [], None)
    assert order["schedule_id"] == f"standing-order-{order['id']}"
    replay = create(http, alice, body, key)
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content
    [(message,)] = api.sql(
        "SELECT payload -> 'data' ->> 'body' FROM outbox WHERE type = 'notification.requested' AND key = %s",
        order["id"],
    )
    assert "2.50 USD" in message and "daily" in message and "Bob Builder" in message
    code = api.otp_code(order["id"])
    assert problem(post(http, alice, order["id"], "otp", code=wrong(code)), 422, "invalid_otp")["attempts_left"] == 4
    ok = post(http, alice, order["id"], "otp", code=code)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "active" and ok.json()["next_run_at"] is not None
    problem(post(http, alice, order["id"], "otp", code=code), 409, "otp_not_pending")

    async def schedule_memo() -> tuple[str, bool]:
        client = await connect(api.settings)
        desc = await client.get_schedule_handle(order["schedule_id"]).describe()
        return str(await desc.memo_value("standing_order_id")), desc.schedule.state.paused

    assert run(schedule_memo()) == (order["id"], False)

    outcomes = [run(trigger_and_finish(api, order["id"])) for _ in range(3)]
    assert outcomes[0].startswith("started"), outcomes
    assert all(o.startswith("already started") for o in outcomes[1:]), outcomes
    runs = get(http, alice, order["id"])["runs"]
    expected_id = str(run_transfer_id(uuid.UUID(order["id"]), datetime.now(UTC).date()))
    assert [(r["scheduled_for"], r["transfer_id"]) for r in runs] == [(today(), expected_id)]
    transfer = wait_status(http, alice, expected_id, "posted")
    assert (transfer["sca_exemption"], transfer["standing_order_id"], transfer["otp"]) == (
        "recurring",
        order["id"],
        None,
    )
    assert api.sql("SELECT count(*) FROM transfer_sca WHERE standing_order_id = %s", order["id"]) == [(1,)]
    assert get(http, alice, order["id"])["runs"][0]["status"] == "posted"

    # Staff see it, with its runs.
    staff = api.staff(http, "auditor")
    me = http.get("/v1/me", headers=bearer(alice)).json()
    listed = http.get("/ops/v1/standing-orders", params={"customer_id": me["customer_id"]}, headers=bearer(staff))
    assert listed.status_code == 200, listed.text
    [seen] = listed.json()["items"]
    assert (seen["id"], seen["customer_id"], len(seen["runs"])) == (order["id"], me["customer_id"], 1)
    assert http.get("/ops/v1/standing-orders", headers=bearer(alice)).status_code == 401


def test_pause_stops_runs_resume_restarts_cancel_ends(api: Api, http: httpx.Client, setup: dict[str, Any]) -> None:
    alice = setup["alice"]
    order = approved(api, http, alice, setup["body"])
    problem(post(http, setup["bob"], order["id"], "pause"), 404, "standing_order_not_found")
    paused = post(http, alice, order["id"], "pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    assert paused.json()["next_run_at"] is None
    problem(post(http, alice, order["id"], "pause"), 409, "invalid_state")
    assert run(run_directly(api, order["id"])).startswith("skipped")
    assert get(http, alice, order["id"])["runs"] == []

    resumed = post(http, alice, order["id"], "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active", resumed.text
    assert run(trigger_and_finish(api, order["id"])).startswith("started")
    assert len(get(http, alice, order["id"])["runs"]) == 1

    cancelled = post(http, alice, order["id"], "cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    problem(post(http, alice, order["id"], "resume"), 409, "invalid_state")
    problem(post(http, alice, order["id"], "cancel"), 409, "invalid_state")

    async def schedule_gone() -> bool:
        client = await connect(api.settings)
        try:
            await client.get_schedule_handle(order["schedule_id"]).describe()
        except RPCError as err:
            return err.status == RPCStatusCode.NOT_FOUND
        return False

    assert run(schedule_gone())


def test_a_run_without_funds_fails_notifies_and_the_order_goes_on(
    api: Api, http: httpx.Client, setup: dict[str, Any]
) -> None:
    alice = setup["alice"]
    order = approved(api, http, alice, setup["body"] | {"amount_minor": 5_000})
    outcome = run(trigger_and_finish(api, order["id"]))
    assert outcome.startswith("started"), outcome
    deadline = time.monotonic() + 30
    while True:
        runs = get(http, alice, order["id"])["runs"]
        if (runs and runs[0]["status"] == "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["status"], r["failure_reason"]) for r in runs] == [("failed", "insufficient_funds")]
    me = http.get("/v1/me", headers=bearer(alice)).json()
    notes = api.sql(
        "SELECT payload -> 'data' ->> 'subject', payload -> 'data' ->> 'body' FROM outbox "
        "WHERE type = 'notification.requested' AND key = %s",
        me["customer_id"],
    )
    assert len(notes) == 1 and "not made" in notes[0][0] and "not enough funds" in notes[0][1]
    after = get(http, alice, order["id"])
    assert after["status"] == "active" and after["next_run_at"] is not None
    # The balance is untouched: nothing was held or moved.
    balance = http.get(f"/v1/accounts/{setup['a']['id']}/balance", headers=bearer(alice)).json()
    assert (balance["ledger_minor"], balance["held_minor"]) == (1_000, 0)
