"""Real transfers through the API and the worker (encryption on), then look everywhere a secret
must not be: the run's logs, what the Temporal server stores, the database (outbox included),
/metrics and the answers. Also: brute force locks the transfer, a code only works for its own
transfer, and a used code cannot be used again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from security.codec import ENCODING, EncryptionCodec
from security.converter import data_converter_for
from security.keys import parse_keyring
from tests.security.conftest import SecApi
from tests.security.helpers import Customer, find, new_customer, start_transfer, wait_status

# Distinctive amounts (minor units), below the USD review threshold.
AMOUNT_POSTED = 738_191
AMOUNT_CANCELLED = 512_347
AMOUNT_REFUSED = 2_946_083  # more than the payer has: refused with insufficient_funds


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload inside a protobuf message, with the field path that leads to it."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        name = f"{path}.{field.name}" if path else field.name
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from payloads_in(item, f"{name}[{key}]")
        elif field.is_repeated:
            for i, item in enumerate(value):
                yield from payloads_in(item, f"{name}[{i}]")
        else:
            yield from payloads_in(value, name)


def without_search_attributes(event: HistoryEvent) -> HistoryEvent:
    copy = HistoryEvent()
    copy.CopyFrom(event)
    copy.workflow_execution_started_event_attributes.ClearField("search_attributes")
    copy.upsert_workflow_search_attributes_event_attributes.ClearField("search_attributes")
    return copy


# What the SDK core itself writes, in clear, into the markers of local activities and patches:
# bookkeeping only (sequence numbers, times, the activity's name, the patch id). The local
# activity's result sits beside it in the same marker, encrypted like every other payload.
SDK_MARKER_FIELDS: dict[tuple[str, str], set[str]] = {
    ("core_local_activity", "data"): {
        "seq",
        "attempt",
        "activity_id",
        "activity_type",
        "complete_time",
        "backoff",
        "original_schedule_time",
        "activation_index",
    },
    ("core_patch", "patch-data"): {"id", "deprecated"},
}


def is_sdk_marker_metadata(event: HistoryEvent, path: str, payload: Payload) -> bool:
    """True for the SDK's own clear marker metadata, after checking it holds nothing else."""
    marker = event.marker_recorded_event_attributes
    for (name, key), fields in SDK_MARKER_FIELDS.items():
        if marker.marker_name == name and path == f"marker_recorded_event_attributes.details[{key}].payloads[0]":
            assert set(json.loads(payload.data)) <= fields, f"unexpected fields in the {name} marker: {payload.data!r}"
            return True
    return False


def database_text(sec: SecApi) -> str:
    """Every row of every table as text: the OTP notification in the outbox and the inbox
    included, which hold the code sealed (otp/delivery.py)."""
    tables = [
        r[0]
        for r in sec.sql(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    assert "outbox" in tables and "otp_attempts" in tables
    chunks: list[str] = []
    for table in tables:
        # Table names come from the catalogue, not from input.
        rows = sec.sql(f'SELECT t::text FROM "{table}" t')
        chunks.extend(r[0] for r in rows)
    return "\n".join(chunks)


async def workflows_of(client: Client, customer: Customer, count: int) -> list[str]:
    """The customer's transfer workflows (by the CustomerId search attribute; visibility may lag)."""
    for _ in range(200):
        ids = [wf.id async for wf in client.list_workflows(f"CustomerId = '{customer.id}'")]
        if len(ids) >= count:
            return ids
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} workflows of {customer.id}, saw {ids}")


@pytest.fixture
async def raw_client(sec: SecApi) -> Client:
    """A client WITHOUT the codec: it sees what the Temporal server stores."""
    return await Client.connect(sec.temporal_address, namespace=sec.settings.temporal_namespace)


async def test_no_secret_in_logs_history_database_or_metrics(
    sec: SecApi,
    http: httpx.Client,
    raw_client: Client,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = new_customer(sec, http, funded_minor=1_500_000)
    bob = new_customer(sec, http)
    answers: list[httpx.Response] = []

    # 1: a wrong code, then the right one: posted.
    r = start_transfer(http, alice, bob, AMOUNT_POSTED)
    assert r.status_code == 201, r.text
    posted_id = r.json()["id"]
    posted_code = sec.otp_code(posted_id)
    codes = [posted_code, wrong(posted_code)]
    answers.append(http.post(f"/v1/transfers/{posted_id}/otp", json={"code": wrong(posted_code)}, headers=alice.auth))
    assert answers[-1].status_code == 422 and answers[-1].json()["code"] == "invalid_otp"
    answers.append(http.post(f"/v1/transfers/{posted_id}/otp", json={"code": posted_code}, headers=alice.auth))
    assert answers[-1].status_code == 200, answers[-1].text
    wait_status(http, alice, posted_id, "posted")

    # 2: cancelled while waiting for its code.
    r = start_transfer(http, alice, bob, AMOUNT_CANCELLED)
    assert r.status_code == 201, r.text
    cancelled_id = r.json()["id"]
    codes.append(sec.otp_code(cancelled_id))
    assert http.post(f"/v1/transfers/{cancelled_id}/cancel", headers=alice.auth).status_code == 200

    # 3: refused by the ledger inside the workflow: its failure message names the account.
    r = start_transfer(http, alice, bob, AMOUNT_REFUSED)
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds", r.text

    keyring = parse_keyring(sec.payload_keys)
    encrypting = await Client.connect(
        sec.temporal_address, namespace=sec.settings.temporal_namespace, data_converter=data_converter_for(keyring)
    )
    workflow_ids = await workflows_of(encrypting, alice, 3)
    for workflow_id in workflow_ids:
        await encrypting.get_workflow_handle(workflow_id).result()

    amounts = [str(a) for a in (AMOUNT_POSTED, AMOUNT_CANCELLED, AMOUNT_REFUSED)]
    amounts += [f"{a // 100}.{a % 100:02d}" for a in (AMOUNT_POSTED, AMOUNT_CANCELLED, AMOUNT_REFUSED)]
    account_ids = [alice.account["id"], bob.account["id"]]
    people = [alice.full_name, bob.full_name, alice.email, bob.email]
    codec = EncryptionCodec(keyring)

    # (b) what the Temporal server stores, read without the codec.
    for workflow_id in workflow_ids:
        history = await raw_client.get_workflow_handle(workflow_id).fetch_history()
        stored = b"".join(e.SerializeToString() for e in history.events)
        assert find(stored, codes) == [], f"OTP code in the raw history of {workflow_id}"
        assert find(stored, account_ids) == [], f"account id in the raw history of {workflow_id}"
        assert find(stored, people) == [], f"name or e-mail in the raw history of {workflow_id}"
        outside_search = b"".join(without_search_attributes(e).SerializeToString() for e in history.events)
        assert find(outside_search, amounts) == [], f"amount in the raw history of {workflow_id}"

        clear: list[str] = []
        decrypted = b""
        for event in history.events:
            for path, payload in payloads_in(event):
                if "search_attributes" in path or is_sdk_marker_metadata(event, path, payload):
                    continue
                if payload.metadata.get("encoding") != ENCODING:
                    clear.append(path)
                else:
                    decrypted += (await codec.decode([payload]))[0].SerializeToString()
        assert clear == [], f"payloads stored in clear in {workflow_id}: {clear}"
        # The control: the same history, decrypted, does hold the amounts and ids we looked for,
        # so the searches above could have found them.
        assert find(decrypted, account_ids) == account_ids
        assert find(decrypted, amounts[:3]) != []

    # (a) everything the run logged, in-process (API, worker, uvicorn, temporalio) and on the fds.
    logged = "\n".join(_record_text(r) for r in caplog.records)
    captured = capfd.readouterr()
    assert "/v1/transfers" in logged, "the log capture saw nothing: the check below would prove nothing"
    assert find(logged + captured.out + captured.err, codes) == [], "OTP code in the logs"

    # (c) the whole database, the OTP notification's outbox row included.
    outbox_types = {r[0] for r in sec.sql("SELECT DISTINCT type FROM outbox")}
    assert {"transfer.posted", "transfer.cancelled", "notification.requested"} <= outbox_types
    assert find(database_text(sec), codes) == [], "OTP code stored outside the notification"

    # Metrics labels, and the answers to the OTP submissions themselves.
    assert find(http.get("/metrics").text, codes) == []
    for answer in answers:
        assert find(answer.text, codes) == []


def _record_text(record: logging.LogRecord) -> str:
    parts: list[Any] = [record.name, record.getMessage(), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return " ".join(str(p) for p in parts)


# -- brute force and replay ---------------------------------------------------------------------


def submit(http: httpx.Client, customer: Customer, transfer_id: str, code: str) -> httpx.Response:
    return http.post(f"/v1/transfers/{transfer_id}/otp", json={"code": code}, headers=customer.auth)


def test_brute_force_locks_at_the_fifth_wrong_code_and_releases_the_hold(sec: SecApi, http: httpx.Client) -> None:
    alice = new_customer(sec, http, funded_minor=100_000)
    bob = new_customer(sec, http)
    r = start_transfer(http, alice, bob, 40_000)
    assert r.status_code == 201, r.text
    transfer_id = r.json()["id"]
    code = sec.otp_code(transfer_id)
    balance = http.get(f"/v1/accounts/{alice.account['id']}/balance", headers=alice.auth).json()
    assert balance["held_minor"] == 40_000

    guesses = [g for g in (f"{n:06d}" for n in range(1_000_000)) if g != code][:5]
    for n, guess in enumerate(guesses[:4]):
        answer = submit(http, alice, transfer_id, guess)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_otp" and answer.json()["attempts_left"] == 4 - n
    fifth = submit(http, alice, transfer_id, guesses[4])
    assert fifth.status_code == 422 and fifth.json()["attempts_left"] == 0

    final = wait_status(http, alice, transfer_id, "failed")
    assert final["failure_reason"] == "otp_locked"
    balance = http.get(f"/v1/accounts/{alice.account['id']}/balance", headers=alice.auth).json()
    assert balance["held_minor"] == 0 and balance["available_minor"] == 100_000
    # The right code is worthless now.
    late = submit(http, alice, transfer_id, code)
    assert late.status_code == 409 and late.json()["code"] == "otp_not_pending"
    assert find(late.text + fifth.text, [code, *guesses]) == []


def test_a_code_only_authorises_its_own_transfer_and_only_once(sec: SecApi, http: httpx.Client) -> None:
    alice = new_customer(sec, http, funded_minor=100_000)
    bob = new_customer(sec, http)
    # Same payer, payee, amount and currency: only the transfer differs.
    a = start_transfer(http, alice, bob, 1_000).json()["id"]
    b = start_transfer(http, alice, bob, 1_000).json()["id"]
    code_a, code_b = sec.otp_code(a), sec.otp_code(b)
    assert code_a != code_b or pytest.skip("the two random codes collided (1 in a million)")

    replayed = submit(http, alice, b, code_a)
    assert replayed.status_code == 422 and replayed.json() | {"attempts_left": 4} == replayed.json()
    assert submit(http, alice, b, code_b).status_code == 200
    assert submit(http, alice, a, code_a).status_code == 200
    wait_status(http, alice, a, "posted")
    again = submit(http, alice, a, code_a)
    assert again.status_code == 409 and again.json()["code"] == "otp_not_pending"


def test_malformed_codes_cost_an_attempt_and_are_never_echoed(sec: SecApi, http: httpx.Client) -> None:
    alice = new_customer(sec, http, funded_minor=10_000)
    bob = new_customer(sec, http)
    transfer_id = start_transfer(http, alice, bob, 1_000).json()["id"]
    for code, status in (("98765432109876", 422), ("\uff11\uff12\uff13\uff14\uff15\uff16", 422), ("x" * 33, 422)):
        answer = submit(http, alice, transfer_id, code)
        assert answer.status_code == status and code not in answer.text


async def test_search_attributes_carry_no_amount(sec: SecApi, http: httpx.Client, raw_client: Client) -> None:
    alice = new_customer(sec, http, funded_minor=100_000)
    bob = new_customer(sec, http)
    created = start_transfer(http, alice, bob, 61_937)
    assert created.status_code == 201, created.text
    history = await raw_client.get_workflow_handle(created.json()["workflow_id"]).fetch_history()
    indexed = b"".join(
        p.SerializeToString() for e in history.events for path, p in payloads_in(e) if "search_attributes" in path
    )
    assert indexed, "no search attributes at all: this check would prove nothing"
    assert find(indexed, [alice.account["id"], bob.account["id"], alice.full_name, alice.email]) == []
    assert find(indexed, ["61937"]) == [], "the amount is stored in clear as a search attribute"
