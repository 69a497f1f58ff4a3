"""No OTP code at rest in clear (docs/design.md invariant 9), on the real stack: API, worker, relay and
Kafka as processes.

Real transfers end posted, cancelled and expired. The inbox shows each code to its owner
only while its challenge can be used, then the mask and the reason; another customer never
sees it. The retention schedule exists once the worker has started, and a triggered sweep
erases the sealed codes that can no longer be used. Then the raw scan: no issued code in any
column of any table, in the Kafka log segments on disk (compressed batches opened), in the
raw Temporal histories, or in any process's log.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from temporalio.client import Client

from ledger import account_numbers
from otp.delivery import CODE_SLOT
from recon.retention_io import SweepProgress
from tests.api.conftest import Api, bearer, new_key
from tests.otp_at_rest.conftest import OTP_TTL_S, ProcessStack
from tests.security.helpers import find
from worker.temporal_client import connect

CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Person:
    token: str
    account: dict[str, Any]
    customer_id: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class Scenario:
    """What the transfers left behind: their ids and every code issued or tried."""

    alice: Person
    bob: Person
    staff_token: str
    posted: str = ""
    cancelled: str = ""
    expired: str = ""
    codes: list[str] = field(default_factory=list)
    inbox_seen: dict[str, str] = field(default_factory=dict)  # transfer id -> body while pending


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def inbox_body(http: httpx.Client, person: Person, transfer_id: str) -> str | None:
    items = http.get("/v1/notifications", headers=person.auth).json()["items"]
    bodies = [n["body"] for n in items if n["transfer_id"] == transfer_id]
    return bodies[0] if bodies else None


def status(http: httpx.Client, person: Person, transfer_id: str) -> str:
    return str(http.get(f"/v1/transfers/{transfer_id}", headers=person.auth).json()["status"])


def start_transfer(http: httpx.Client, payer: Person, payee: Person, amount_minor: int) -> str:
    r = http.post(
        "/v1/transfers",
        json={
            "source_account_id": payer.account["id"],
            "destination_account_id": payee.account["id"],
            "amount_minor": amount_minor,
            "currency": "USD",
        },
        headers=payer.auth | {"Idempotency-Key": new_key()},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def pending_code(http: httpx.Client, scenario: Scenario, transfer_id: str) -> str:
    """The code as the owner's inbox shows it while the challenge is pending."""
    body = wait_for(lambda: inbox_body(http, scenario.alice, transfer_id), f"the OTP message of {transfer_id}")
    match = CODE.search(body)
    assert match is not None and CODE_SLOT not in body, f"the owner sees the code while pending: {body!r}"
    scenario.inbox_seen[transfer_id] = body
    scenario.codes.append(match.group(1))
    return match.group(1)


@pytest.fixture(scope="module")
def scenario(process_stack: ProcessStack) -> Iterator[Scenario]:
    engine = create_engine(process_stack.env["LEDGERFLOW_DATABASE_URL"])
    api = Api(
        process_stack.base_url,
        process_stack.env["LEDGERFLOW_DATABASE_URL"],
        engine,
        process_stack.settings,
        admin_totp_uri=process_stack.admin_totp_uri,
    )
    with process_stack.client() as http:
        people = []
        for name in ("Alice Sealed", "Bob Other"):
            body, token = api.signup(http, name)
            people.append(Person(token, api.open_account(http, token, "USD"), str(body["customer_id"])))
        alice, bob = people
        staff_token = api.admin_token(http)
        api.deposit(http, staff_token, alice.account, 1_000_000)
        scenario = Scenario(alice, bob, staff_token)

        # Posted: a wrong code first, then the right one.
        scenario.posted = start_transfer(http, alice, bob, 12_345)
        code = pending_code(http, scenario, scenario.posted)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        scenario.codes.append(wrong)
        r = http.post(f"/v1/transfers/{scenario.posted}/otp", json={"code": wrong}, headers=alice.auth)
        assert r.status_code == 422, r.text
        r = http.post(f"/v1/transfers/{scenario.posted}/otp", json={"code": code}, headers=alice.auth)
        assert r.status_code == 200, r.text
        wait_for(lambda: status(http, alice, scenario.posted) == "posted", "posted")

        # Cancelled while its code was pending.
        scenario.cancelled = start_transfer(http, alice, bob, 23_456)
        pending_code(http, scenario, scenario.cancelled)
        assert http.post(f"/v1/transfers/{scenario.cancelled}/cancel", headers=alice.auth).status_code == 200

        # Expired: nobody enters the code.
        scenario.expired = start_transfer(http, alice, bob, 34_567)
        pending_code(http, scenario, scenario.expired)
        wait_for(lambda: status(http, alice, scenario.expired) == "expired", "expiry", timeout_s=OTP_TTL_S + 60)
    yield scenario
    engine.dispose()


def test_the_inbox_shows_the_code_to_its_owner_only_while_it_can_be_used(
    process_stack: ProcessStack, scenario: Scenario
) -> None:
    with process_stack.client() as http:
        for transfer_id, reason in (
            (scenario.posted, "used"),
            (scenario.cancelled, "cancelled"),
            (scenario.expired, "expired"),
        ):
            body = inbox_body(http, scenario.alice, transfer_id)
            assert body is not None
            assert find(body, scenario.codes) == [], f"code still shown after {reason}: {body!r}"
            assert f"{CODE_SLOT} ({reason})" in body, body
            # The message still names amount, currency and payee.
            pending = scenario.inbox_seen[transfer_id]
            assert body.split(" is ")[0] == pending.split(" is ")[0]
            payee_number = account_numbers.grouped(scenario.bob.account["account_number"])
            assert "USD" in body and payee_number in body

        # Another customer sees none of it, listed or by id (404, no existence leak).
        mine = http.get("/v1/notifications", headers=scenario.alice.auth).json()["items"]
        theirs = http.get("/v1/notifications", headers=scenario.bob.auth).json()["items"]
        assert {n["transfer_id"] for n in theirs}.isdisjoint({n["transfer_id"] for n in mine})
        for note in mine:
            r = http.get(f"/v1/notifications/{note['id']}", headers=scenario.bob.auth)
            assert r.status_code == 404 and r.json()["code"] == "notification_not_found"


async def test_the_retention_schedule_exists_after_worker_start_and_its_sweep_erases_spent_codes(
    process_stack: ProcessStack, scenario: Scenario
) -> None:
    client = await connect(process_stack.settings)
    handle = client.get_schedule_handle("retention-sweep")
    description = await handle.describe()
    assert description.schedule.action.task_queue == process_stack.task_queue  # type: ignore[attr-defined]
    assert description.schedule.action.workflow == "RetentionSweep"  # type: ignore[attr-defined]

    ours = [scenario.posted, scenario.cancelled, scenario.expired]
    sealed = "SELECT count(*) FROM notifications WHERE code_sealed IS NOT NULL AND transfer_id = ANY(%s::uuid[])"
    assert process_stack.sql(sealed, ours)[0][0] == 3
    await handle.trigger()
    run = wait_for(
        lambda: process_stack.sql(
            "SELECT removed, workflow_id FROM retention_runs WHERE status = 'completed' "
            "ORDER BY started_at DESC LIMIT 1"
        ),
        "a completed sweep",
    )[0]
    assert run[1].startswith("retention-sweep-scheduled")
    assert int(run[0]["inbox_otp_codes"]) >= 3
    assert process_stack.sql(sealed, ours)[0][0] == 0
    # The workflow answers its progress query (the ops page reads the run record).
    progress = await client.get_workflow_handle(run[1]).query("progress", result_type=SweepProgress)
    assert progress.done and progress.removed["inbox_otp_codes"] == int(run[0]["inbox_otp_codes"])

    with process_stack.client() as http:
        shown = http.get("/ops/v1/retention", headers=bearer(scenario.staff_token)).json()
        assert shown["last_sweep"]["status"] == "completed" and shown["outbox_retention_days"] == 7
        assert shown["last_sweep"]["removed"]["inbox_otp_codes"] >= 3
        # Once erased, the owner's inbox shows the mask (the message itself stays).
        assert f"{CODE_SLOT} (used)" in (inbox_body(http, scenario.alice, scenario.posted) or "")


# -- the raw scan --------------------------------------------------------------------------------


def database_text(stack: ProcessStack) -> str:
    """Every column of every row of every table, as text."""
    tables = [
        r[0]
        for r in stack.sql(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    assert {"outbox", "notifications", "otp_challenges", "processed_events"} <= set(tables)
    # Table names come from the catalogue, not from input.
    return "\n".join(r[0] for table in tables for r in stack.sql(f'SELECT t::text FROM "{table}" t'))


LZ4 = 3
BATCH_HEADER = 61  # record batch v2: offset 8, length 4, epoch 4, magic 1, crc 4, attributes 2, ... count 4


def segment_records(path: Path) -> bytes:
    """The records of a Kafka log segment with compressed batches opened (lz4 frames, the
    relay's compression), so a code inside a compressed batch cannot hide from the scan."""
    data = path.read_bytes()
    out = bytearray()
    pos = 0
    while pos + BATCH_HEADER <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        if length <= 0:
            break
        end = pos + 12 + length
        (attributes,) = struct.unpack_from(">h", data, pos + 21)
        records = data[pos + BATCH_HEADER : end]
        if attributes & 0x07 == LZ4:
            lz4 = shutil.which("lz4")
            assert lz4 is not None, "the lz4 tool is needed to open the relay's compressed batches"
            records = subprocess.run([lz4, "-d", "-c"], input=records, capture_output=True, check=True).stdout
        else:
            assert attributes & 0x07 == 0, f"unexpected compression {attributes & 0x07} in {path}"
        out += records
        pos = end
    return bytes(out)


def kafka_text(stack: ProcessStack) -> bytes:
    """Every log segment of every topic partition on the broker's disk: raw bytes and opened."""
    segments = sorted(stack.kafka_data.glob("ledgerflow.*/*.log"))
    assert any("ledgerflow.notifications-" in str(p) for p in segments), segments
    return b"\n".join(p.read_bytes() + b"\n" + segment_records(p) for p in segments)


async def raw_histories(stack: ProcessStack, workflow_ids: list[str]) -> bytes:
    """What the Temporal server stores, read WITHOUT the codec."""
    raw = await Client.connect(stack.settings.temporal_address, namespace=stack.settings.temporal_namespace)
    chunks = []
    for workflow_id in workflow_ids:
        history = await raw.get_workflow_handle(workflow_id).fetch_history()
        assert history.events, workflow_id
        chunks.append(b"".join(e.SerializeToString() for e in history.events))
    return b"\n".join(chunks)


def logs_text(stack: ProcessStack) -> str:
    files = [p.log_path for p in stack.procs] + sorted(stack.infra_logs.glob("*"))
    return "\n".join(p.read_text(errors="replace") for p in files if p.is_file())


async def test_raw_scan_no_issued_code_in_any_table_topic_history_or_log(
    process_stack: ProcessStack, scenario: Scenario
) -> None:
    codes = scenario.codes
    assert len(set(codes)) >= 3
    ours = [scenario.posted, scenario.cancelled, scenario.expired]

    # Each place is checked to hold what we look at (the transfers' ids), so a clean scan
    # cannot come from looking in the wrong place.
    db = database_text(process_stack)
    assert find(db, ours) == ours
    assert find(db, codes) == [], "an OTP code rests in clear in the database"

    wait_for(
        lambda: find(kafka_text(process_stack), [scenario.expired]) == [scenario.expired],
        "the last OTP message in the notifications topic's segments",
    )
    topics = kafka_text(process_stack)
    assert find(topics, ours) == ours
    assert b"lfs1." in topics, "the sealed codes travel on the topic"
    assert find(topics, codes) == [], "an OTP code rests in clear in a Kafka log segment"

    workflow_ids = [f"transfer-{t}" for t in ours]
    workflow_ids += [r[0] for r in process_stack.sql("SELECT workflow_id FROM retention_runs")]
    histories = await raw_histories(process_stack, workflow_ids)
    assert find(histories, codes) == [], "an OTP code rests in clear in a Temporal history"

    logged = logs_text(process_stack)
    assert find(logged, [f"/v1/transfers/{scenario.posted}/otp"]), "the API's log saw the requests"
    assert find(logged, codes) == [], "an OTP code in a process's log"
