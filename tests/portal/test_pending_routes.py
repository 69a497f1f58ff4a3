"""The ops pages for routes other engineers are still building (reversals, reconciliation runs),
against a stand-in API that follows docs/api.md: the portal's side of the contract is checked now,
without a browser or a database; the browser tests take over once the real routes land."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, Form, Header
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

import portal
from ledger.db import make_engine as create_engine
from portal.sessions import SessionStore
from security.keys import parse_keyring
from security.sealed import Sealer

TRANSFER_ID = str(uuid.uuid4())
STAFF = {"t-operator": ("op@example.test", "operator"), "t-admin": ("admin@example.test", "admin")}


def problem(status: int, code: str) -> JSONResponse:
    body = {"type": code, "title": code, "status": status, "detail": code, "code": code}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def stand_in_api(*, pending: bool = True) -> APIRouter:
    """Login and whoami, plus (when `pending`) the reversal and reconciliation routes."""
    api = APIRouter(prefix="/ops/v1")
    reversals: dict[str, dict[str, Any]] = {}
    runs: dict[str, int] = {}

    def who(authorization: str | None) -> str:
        return (authorization or "").removeprefix("Bearer ")

    @api.post("/auth/token")
    def token(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
        found = next((t for t, (email, _) in STAFF.items() if email == username), None)
        if found is None or password != "pw":
            return problem(401, "invalid_credentials")
        return JSONResponse({"access_token": found, "token_type": "bearer", "expires_in": 3600})

    @api.post("/auth/logout")
    def logout() -> Response:
        return Response(status_code=204)

    @api.get("/staff/me")
    def me(authorization: Annotated[str | None, Header()] = None) -> dict[str, str]:
        email, role = STAFF[who(authorization)]
        return {"staff_id": str(uuid.uuid4()), "email": email, "role": role, "created_at": "2025-01-01T00:00:00Z"}

    @api.get("/me/totp")
    def totp_status() -> dict[str, object]:
        # Staff here have their second factor on (the real rules: tests/api/test_totp.py).
        return {"enabled": True, "pending": False, "required": True, "recovery_codes_left": 10}

    if not pending:
        return api

    @api.post("/transfers/{transfer_id}/reversals")
    def request_reversal(transfer_id: str, authorization: Annotated[str | None, Header()] = None) -> Response:
        if transfer_id != TRANSFER_ID:
            return problem(409, "not_reversible")
        rid = str(uuid.uuid4())
        reversals[rid] = {
            "id": rid,
            "transfer_id": transfer_id,
            "status": "pending_approval",
            "requested_by": who(authorization),
        }
        return JSONResponse(reversals[rid], status_code=201)

    @api.post("/reversals/{reversal_id}/approve")
    def approve(reversal_id: str, authorization: Annotated[str | None, Header()] = None) -> Response:
        reversal = reversals.get(reversal_id)
        if reversal is None:
            return problem(404, "reversal_not_found")
        if reversal["requested_by"] == who(authorization):
            return problem(403, "four_eyes_required")
        if reversal["status"] != "pending_approval":
            return problem(409, "reversal_not_pending")
        reversal["status"] = "approved"
        return JSONResponse(reversal)

    @api.post("/reconciliation/runs")
    def start_run() -> Response:
        rid = str(uuid.uuid4())
        runs[rid] = 0
        return JSONResponse({"id": rid, "status": "running"}, status_code=202)

    @api.get("/reconciliation/runs/{run_id}")
    def get_run(run_id: str) -> Response:
        if run_id not in runs:
            return problem(404, "run_not_found")
        runs[run_id] += 1
        done = runs[run_id] > 1  # running when first read, finished on the next poll
        return JSONResponse(
            {
                "id": run_id,
                "status": "completed" if done else "running",
                "started_at": "2025-01-01T00:00:00Z",
                "finished_at": "2025-01-01T00:00:05Z" if done else None,
                "checks": [{"name": "balances_match_entries", "ok": True, "details": {"accounts": 12}}] if done else [],
            }
        )

    return api


@pytest.fixture
def sessions(migrated_db_url: str) -> Iterator[SessionStore]:
    """Portal sessions live in PostgreSQL (shared by every API process): a real table here too."""
    engine = create_engine(migrated_db_url)
    try:
        yield SessionStore(engine, Sealer(parse_keyring(f"t:{secrets.token_hex(32)}")))
    finally:
        engine.dispose()


def portal_app(sessions: SessionStore, *, pending: bool = True) -> FastAPI:
    app = FastAPI()
    app.include_router(stand_in_api(pending=pending))
    portal.install(app)
    app.state.portal_sessions = sessions
    return app


@pytest.fixture
def app(sessions: SessionStore) -> FastAPI:
    return portal_app(sessions)


def login(app: FastAPI, token: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    form = client.get("/ops/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf
    r = client.post("/ops/login", data={"email": STAFF[token][0], "password": "pw", "csrf_token": csrf.group(1)})
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


@pytest.fixture
def admin(app: FastAPI) -> Iterator[TestClient]:
    with login(app, "t-admin") as client:
        yield client


def test_reversal_maker_checker(app: FastAPI, admin: TestClient) -> None:
    csrf = csrf_of(admin, "/ops/reversals")
    r = admin.post(f"/ops/transfers/{TRANSFER_ID}/reversals", data={"csrf_token": csrf, "reason": "complaint"})
    assert r.status_code == 303 and r.headers["location"].startswith("/ops/reversals?id=")
    reversal_id = r.headers["location"].split("=", 1)[1]
    page = admin.get(r.headers["location"]).text
    assert "requested. A second staff member with the approver role must approve it." in page
    assert f'value="{reversal_id}"' in page  # the approve form is filled in

    # The requester approving their own reversal: four eyes.
    r = admin.post("/ops/reversals/approve", data={"csrf_token": csrf, "reversal_id": reversal_id})
    assert "A second staff member must approve this" in admin.get(r.headers["location"]).text

    with login(app, "t-operator") as operator:
        # An operator is not an approver: no approve form is offered.
        assert "Approve reversal" not in operator.get("/ops/reversals").text
    # (The approver's success path redirects to the transfer.)
    other = {"t-other": ("other@example.test", "approver")}
    STAFF.update(other)
    try:
        with login(app, "t-other") as approver:
            token = csrf_of(approver, "/ops/reversals")
            r = approver.post("/ops/reversals/approve", data={"csrf_token": token, "reversal_id": reversal_id})
            assert r.headers["location"] == f"/ops/transfers/{TRANSFER_ID}"
            r = approver.post("/ops/reversals/approve", data={"csrf_token": token, "reversal_id": reversal_id})
            assert "no longer waiting for approval" in approver.get(r.headers["location"]).text
            r = approver.post("/ops/reversals/approve", data={"csrf_token": token, "reversal_id": str(uuid.uuid4())})
            assert "That reversal does not exist." in approver.get(r.headers["location"]).text
    finally:
        STAFF.pop("t-other")


def test_reversal_refusals(admin: TestClient) -> None:
    csrf = csrf_of(admin, "/ops/reversals")
    r = admin.post(f"/ops/transfers/{uuid.uuid4()}/reversals", data={"csrf_token": csrf, "reason": "x"})
    assert "This transfer cannot be reversed" in admin.get(r.headers["location"], follow_redirects=True).text


def test_reconciliation_run_page_polls_until_done(admin: TestClient) -> None:
    csrf = csrf_of(admin, "/ops/reconciliation")
    r = admin.post("/ops/reconciliation", data={"csrf_token": csrf})
    assert r.status_code == 303
    run_url = r.headers["location"]
    page = admin.get(run_url).text
    assert f'data-poll-url="{run_url}/status"' in page and "running" in page
    status = admin.get(f"{run_url}/status").json()
    assert status["terminal"] is True and status["status"] == "completed"
    assert "balances_match_entries" in status["html"] and "badge-ok" in status["html"]
    # The run list route is not in the contract: the page still starts runs and opens one by id.
    page = admin.get("/ops/reconciliation").text
    assert "Run reconciliation now" in page and "not available" not in page


def test_missing_routes_are_explained(sessions: SessionStore) -> None:
    bare = portal_app(sessions, pending=False)  # no reversal or reconciliation routes at all
    with login(bare, "t-admin") as admin:
        csrf = csrf_of(admin, "/ops/reconciliation")
        assert "Reconciliation is not available on this server yet." in admin.get("/ops/reconciliation").text
        r = admin.post(f"/ops/transfers/{TRANSFER_ID}/reversals", data={"csrf_token": csrf, "reason": "x"})
        assert "Reversals are not available on this server yet." in admin.get(r.headers["location"]).text
