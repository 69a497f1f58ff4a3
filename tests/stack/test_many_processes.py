"""Two API processes on one port (the launcher's shared socket), a worker and a relay, as
`ledgerflow up` runs them: every piece of state holds across the processes, and a process
killed with -9 is restarted by the launcher with no request left half-done.

Each request goes on a new connection (no keep-alive), so the kernel picks the process that
accepts it; every response names that process (X-Ledgerflow-Process), and each test checks
that both processes served some of its requests before it believes the rest.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import Engine, text

from api import throttle
from ledger.db import make_engine
from stack.ephemeral import EphemeralStack
from stack.service import Service
from tests.totp_auth import Authenticator

PROCESS = "X-Ledgerflow-Process"
BOTH = {"api-1", "api-2"}
ADMIN = ("admin@ledgerflow.local", "admin-password")
OTP_PER_CUSTOMER = 6


@dataclass
class Running:
    base_url: str
    stack: EphemeralStack
    engine: Engine

    def http(self) -> httpx.Client:
        # A new connection per request: the kernel spreads them over the processes.
        return httpx.Client(base_url=self.base_url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))

    def api(self, name: str) -> Service:
        return next(svc for svc in self.stack.apps("api") if svc.name == name)


@pytest.fixture(scope="module")
def running(test_stack: EphemeralStack) -> Iterator[Running]:
    # The session's stores, and this module's application processes: 2 API, 1 worker, 1 relay.
    test_stack.settings = test_stack.settings.model_copy(
        update={"api_processes": 2, "worker_processes": 1, "relay_processes": 1}
    )
    test_stack.stack.settings = test_stack.settings
    _STACK[:] = [test_stack]
    base_url = test_stack.full(
        extra_env={
            # Six OTP submissions a minute per customer: the window the rate-limit test fills
            # (and exactly what the OTP-attempt test sends).
            "LEDGERFLOW_RATELIMIT_OTP_PER_CUSTOMER": str(OTP_PER_CUSTOMER),
            "LEDGERFLOW_RATELIMIT_OTP_PER_IP": "0",
            # Transfer creation unlimited: the kill test's client retries (409 in flight while
            # the killed process's lease runs out) would otherwise spend the per-minute budget.
            "LEDGERFLOW_RATELIMIT_TRANSFERS_PER_CUSTOMER": "0",
            "LEDGERFLOW_RATELIMIT_TRANSFERS_PER_IP": "0",
        }
    )
    engine = make_engine(test_stack.database_url, pool_size=2)
    try:
        yield Running(base_url, test_stack, engine)
    finally:
        engine.dispose()
        test_stack.stop_apps()


def spread(n: int, send: Callable[[int], httpx.Response], workers: int = 8) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, range(n)))


def served_by(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.headers[PROCESS] for r in responses)


def signup(http: httpx.Client) -> tuple[str, str, str]:
    """A new customer: (email, password, bearer token)."""
    email = f"mp-{uuid.uuid4().hex[:10]}@example.test"
    password = "many-processes-1"
    r = http.post("/v1/signup", json={"email": email, "password": password, "full_name": "Many Processes"})
    assert r.status_code == 201, r.text
    r = http.post("/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return email, password, str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_ADMIN_TOKENS: dict[str, str] = {}


def admin_token(http: httpx.Client) -> str:
    """The dev admin signed in once per stack, with the code from the seed's otpauth:// file
    (a TOTP step is accepted once: the tests share one sign-in)."""
    key = str(http.base_url)
    if key not in _ADMIN_TOKENS:
        from chaos.workload import dev_admin_totp_uri

        uri = dev_admin_totp_uri(_STACK[0])
        form = {"username": ADMIN[0], "password": ADMIN[1], "totp": Authenticator.of(uri).code()}
        r = http.post("/ops/v1/auth/token", data=form)
        assert r.status_code == 200, r.text
        _ADMIN_TOKENS[key] = str(r.json()["access_token"])
    return _ADMIN_TOKENS[key]


_STACK: list[EphemeralStack] = []


def funded_account(http: httpx.Client, token: str, amount_minor: int) -> dict[str, Any]:
    account = http.post("/v1/accounts", json={"currency": "USD"}, headers=bearer(token)).json()
    staff = admin_token(http)
    r = http.post(
        "/ops/v1/deposits",
        json={
            "account_id": account["id"],
            "amount_minor": amount_minor,
            "currency": "USD",
            "external_reference": f"wire-{uuid.uuid4().hex[:8]}",
        },
        headers=bearer(staff) | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 201, r.text
    return dict(account)


def test_a_token_and_a_portal_session_work_through_both_processes(running: Running) -> None:
    with running.http() as http:
        _, password, token = signup(http)
        me = spread(40, lambda _: http.get("/v1/me", headers=bearer(token)))
        assert [r.status_code for r in me] == [200] * 40
        assert set(served_by(me)) == BOTH, served_by(me)

        # The portal: log in through one process ...
        email = me[0].json()["email"]
        form = http.get("/portal/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        login = http.post(
            "/portal/login",
            data={"email": email, "password": password, "csrf_token": csrf.group(1), "next": "/portal/accounts"},
        )
        assert login.status_code == 303, login.text
        assert "lf_portal" in http.cookies  # the session cookie, in the client's jar from now on
        # ... and every page through either process is signed in (no redirect to the login).
        pages = spread(30, lambda _: http.get("/portal/accounts"))
        assert [r.status_code for r in pages] == [200] * 30
        assert all("Log out</button>" in r.text for r in pages)
        assert set(served_by(pages)) == BOTH, served_by(pages)
        # A form posted through one process carries the session's CSRF token, which any process
        # derives: log out, and the session is gone for both.
        csrf_session = re.search(r'name="csrf_token" value="([^"]+)"', pages[0].text)
        assert csrf_session is not None
        assert http.post("/portal/logout", data={"csrf_token": csrf_session.group(1)}).status_code == 303
        with running.http() as replay:
            replay.cookies.set("lf_portal", login.cookies["lf_portal"], path="/portal")
            after = spread(10, lambda _: replay.get("/portal/accounts"))
        assert {r.status_code for r in after} == {303}
        assert all(r.headers["location"].startswith("/portal/login") for r in after)


def test_the_login_throttle_counts_across_processes(running: Running) -> None:
    with running.http() as http:
        email, password, _ = signup(http)
        failures = spread(
            throttle.MAX_FAILURES_PER_USERNAME,
            lambda _: http.post("/v1/auth/token", data={"username": email, "password": "wrong-password"}),
        )
        assert [r.status_code for r in failures] == [401] * throttle.MAX_FAILURES_PER_USERNAME
        assert set(served_by(failures)) == BOTH, served_by(failures)
        # The next attempts, even with the right password, are refused on whichever process.
        after = spread(6, lambda _: http.post("/v1/auth/token", data={"username": email, "password": password}))
        assert [r.status_code for r in after] == [429] * 6
        assert {r.json()["code"] for r in after} == {"too_many_attempts"}


def test_the_otp_attempt_count_holds_across_processes(running: Running) -> None:
    # Which process accepts a new connection is the kernel's choice: a round whose six answers
    # all came from one process proves nothing about sharing, so it is played again (a new
    # transfer each time) until one spreads over both.
    for _ in range(8):
        if _otp_attempts_round(running) == BOTH:
            return
    raise AssertionError("eight rounds of OTP attempts never reached both API processes")


def _otp_attempts_round(running: Running) -> set[str]:
    with running.http() as http:
        _, _, token = signup(http)
        source = funded_account(http, token, 10_000)
        destination = http.post("/v1/accounts", json={"currency": "USD"}, headers=bearer(token)).json()
        created = http.post(
            "/v1/transfers",
            json={
                "source_account_id": source["id"],
                "destination_account_id": destination["id"],
                "amount_minor": 1_000,
                "currency": "USD",
            },
            headers=bearer(token) | {"Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 201, created.text
        transfer_id = created.json()["id"]
        # Five wrong codes (the limit), one after another over new connections, then a sixth.
        answers = []
        for _ in range(6):
            answers.append(
                http.post(f"/v1/transfers/{transfer_id}/otp", json={"code": "000000"}, headers=bearer(token))
            )
        wrong = [(r.status_code, r.json().get("attempts_left")) for r in answers[:4]]
        assert wrong == [(422, 4), (422, 3), (422, 2), (422, 1)], [r.text for r in answers]
        assert answers[4].status_code in (409, 422), answers[4].text  # the fifth locks it
        assert answers[5].status_code == 409 and answers[5].json()["code"] == "otp_not_pending"
        deadline = time.monotonic() + 30
        while (t := http.get(f"/v1/transfers/{transfer_id}", headers=bearer(token)).json())["status"] != "failed":
            assert time.monotonic() < deadline, t
            time.sleep(0.2)
        assert t["failure_reason"] == "otp_locked"
        return set(served_by(answers))


def test_the_rate_limit_window_is_exact_across_processes(running: Running) -> None:
    with running.http() as http:
        _, _, token = signup(http)

        def submit(_: int) -> httpx.Response:
            # No such transfer (404), but only after the limiter counted the request.
            return http.post(f"/v1/transfers/{uuid.uuid4()}/otp", json={"code": "123456"}, headers=bearer(token))

        answers = spread(30, submit, workers=12)
        statuses = Counter(r.status_code for r in answers)
        assert statuses == {404: OTP_PER_CUSTOMER, 429: 30 - OTP_PER_CUSTOMER}, statuses
        assert {r.json()["code"] for r in answers if r.status_code == 429} == {"rate_limited"}
        assert set(served_by(answers)) == BOTH, served_by(answers)


def _requests_in_flight(svc: Service, api_port: int) -> int:
    """Client connections the process has accepted on the API port (not its own connections
    to PostgreSQL, Temporal or Kafka)."""
    assert svc.process is not None
    try:
        conns = psutil.Process(svc.process.pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == api_port)


def _pause(svc: Service) -> int:
    """Stop (SIGSTOP) the service's process group; returns the group for SIGCONT."""
    assert svc.process is not None
    group = os.getpgid(svc.process.pid)
    assert group != os.getpgrp(), "the service shares the test's process group"
    os.killpg(group, signal.SIGSTOP)
    return group


def test_a_killed_api_process_is_restarted_and_no_request_is_left_half_done(running: Running) -> None:
    with running.http() as http:
        _, _, token = signup(http)
        source = funded_account(http, token, 1_000_000)
        destination = http.post("/v1/accounts", json={"currency": "USD"}, headers=bearer(token)).json()
    victim = running.api("api-1")
    old_pid = victim.process.pid if victim.process is not None else None
    keys = [str(uuid.uuid4()) for _ in range(16)]
    interrupted: list[str] = []
    outcomes: dict[str, httpx.Response] = {}
    go = threading.Event()

    def create(key: str) -> None:
        # A careful client: after a dropped connection it retries with the same key.
        body = {
            "source_account_id": source["id"],
            "destination_account_id": destination["id"],
            "amount_minor": 100,
            "currency": "USD",
        }
        go.wait()
        with running.http() as client:
            for _ in range(60):
                try:
                    r = client.post("/v1/transfers", json=body, headers=bearer(token) | {"Idempotency-Key": key})
                except httpx.TransportError:
                    interrupted.append(key)
                    time.sleep(0.5)
                    continue
                if r.status_code == 409 and r.json().get("code") == "idempotency_key_in_flight":
                    time.sleep(0.5)
                    continue
                outcomes[key] = r
                return

    threads = [threading.Thread(target=create, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    # Creation waits for the workflow's first task, so with the worker paused every request
    # stays in flight until the kill: on a fast machine they could all finish between seeing
    # one in flight and the kill, and the test would kill an idle process.
    worker = _pause(running.stack.apps("worker")[0])
    try:
        go.set()
        deadline = time.monotonic() + 30
        while _requests_in_flight(victim, running.stack.settings.api_port) == 0:
            assert time.monotonic() < deadline, "api-1 never had a request in flight"
            time.sleep(0.01)
        victim.kill()
    finally:
        # Well inside the API's 15 s wait for the workflow's answer.
        os.killpg(worker, signal.SIGCONT)
    for t in threads:
        t.join(300)

    assert interrupted, "no request was in flight on the killed process"
    assert sorted(outcomes) == sorted(keys)
    assert {r.status_code for r in outcomes.values()} == {201}, [r.text for r in outcomes.values()]
    ids = {key: r.json()["id"] for key, r in outcomes.items()}
    assert len(set(ids.values())) == len(keys)
    with running.engine.connect() as conn:
        # Exactly one transfer and one hold per key, each transfer waiting for its code.
        rows = conn.execute(
            text(
                "SELECT t.id, t.status, (SELECT count(*) FROM holds h WHERE h.transfer_id = t.id) AS holds "
                "FROM transfers t WHERE t.source_account_id = :s"
            ),
            {"s": source["id"]},
        ).all()
        keys_state = conn.execute(
            text("SELECT state, count(*) FROM idempotency_keys WHERE key = ANY(:k) GROUP BY state"), {"k": keys}
        ).all()
    assert sorted(str(r.id) for r in rows) == sorted(ids.values())
    assert {(r.status, r.holds) for r in rows} == {("pending_otp", 1)}
    assert [tuple(r) for r in keys_state] == [("completed", len(keys))]
    balance = None
    with running.http() as http:
        balance = http.get(f"/v1/accounts/{source['id']}/balance", headers=bearer(token)).json()
    assert balance["held_minor"] == 100 * len(keys)

    # The launcher restarted it, said so, and it serves again.
    launcher_log = running.stack.stack.logs / "launcher.log"
    deadline = time.monotonic() + 120
    while "api-1 restarted as pid" not in (launcher_log.read_text() if launcher_log.exists() else ""):
        assert time.monotonic() < deadline, "api-1 was not restarted"
        time.sleep(0.2)
    log = launcher_log.read_text()
    assert "api-1 exited with code -9; restarting it" in log
    assert victim.process is not None and victim.process.pid != old_pid
    assert f"api-1 restarted as pid {victim.process.pid} " in log
    with running.http() as http:
        health = spread(30, lambda _: http.get("/healthz"))
    assert set(served_by(health)) == BOTH
