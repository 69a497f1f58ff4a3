"""portal/sessions.py and the small pure parts of portal/web.py and portal/messages.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from config.settings import Settings
from ledger.db import make_engine
from portal import messages
from portal.nav import nav_for, ops_page_allowed
from portal.sessions import IDLE_TIMEOUT_S, TOKEN_MARGIN_S, SessionStore, csrf_token_for, id_hash
from portal.web import CUSTOMER, STAFF, safe_next
from security.sealed import load_sealer


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url, pool_size=2)
    yield engine
    engine.dispose()


def new_store(engine: Engine, home: Path, clock: Clock | None = None) -> SessionStore:
    return SessionStore(engine, load_sealer(Settings(home=home)), clock=clock)


def test_session_lifecycle(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    store = new_store(engine, tmp_path, clock)
    s = store.create("customer", "api-token", 8 * 3600, email="a@example.test", name="A")
    assert len(s.id) >= 43 and len(s.csrf_token) >= 43 and s.id != s.csrf_token
    assert store.get(s.id, "customer") == s
    # Sessions carry their realm: the same id is nothing in the other one.
    assert store.get(s.id, "staff") is None
    assert store.get("guess", "customer") is None and store.get(None, "customer") is None

    # Idle timeout slides with use ...
    clock.advance(IDLE_TIMEOUT_S - 1)
    assert store.get(s.id, "customer") is not None
    clock.advance(IDLE_TIMEOUT_S - 1)
    assert store.get(s.id, "customer") is not None
    # ... and ends after 30 minutes without a request.
    clock.advance(IDLE_TIMEOUT_S + 1)
    assert store.get(s.id, "customer") is None
    gone = store.expired(s.id)
    assert gone is not None and gone.api_token == "api-token"
    assert store.expired(s.id) is None and len(store) == 0


def test_session_ends_with_its_api_token(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    start = clock.now
    store = new_store(engine, tmp_path, clock)
    s = store.create("staff", "t", 600, email="ops@example.test", role="operator")
    for _ in range(25):  # busy all along, never idle
        clock.advance(19)
        assert store.get(s.id, "staff") is not None
    clock.now = start + timedelta(seconds=600 - TOKEN_MARGIN_S)
    assert store.get(s.id, "staff") is None
    # Swept by hash (the store never knew the id in clear), with the token to revoke.
    assert [(x.id, x.api_token) for x in store.sweep()] == [(id_hash(s.id), "t")]


def test_drop_and_flash(engine: Engine, tmp_path: Path) -> None:
    store = new_store(engine, tmp_path)
    s = store.create("customer", "t", 3600, email="a@example.test")
    s.flash("ok", "done")
    s.flash("error", "and this")
    # Another process (another store on the same table) renders the next page.
    other = new_store(engine, tmp_path).get(s.id, "customer")
    assert other is not None
    assert other.take_flashes() == [("ok", "done"), ("error", "and this")] and s.take_flashes() == []
    dropped = store.drop(s.id)
    assert dropped is not None and dropped.id == s.id
    assert store.get(s.id, "customer") is None and store.drop(s.id) is None


def test_nothing_in_the_table_opens_a_session(engine: Engine, tmp_path: Path) -> None:
    """The row holds the id's hash and a sealed token, no CSRF token: a dump of the table gives
    neither a cookie, nor the API token, nor a form token."""
    store = new_store(engine, tmp_path)
    token = "api-token-that-must-not-rest-in-clear"
    s = store.create("customer", token, 3600, email="a@example.test")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM portal_sessions")).mappings().one()
        as_text = conn.execute(text("SELECT CAST(p AS text) FROM portal_sessions p")).scalar_one()
    assert row["id_hash"] == id_hash(s.id)
    for secret in (s.id, token, s.csrf_token):
        assert secret not in as_text
    assert s.csrf_token == csrf_token_for(s.id)
    # A sealed token moved to another session's row does not open there.
    t = store.create("customer", "other-token", 3600, email="b@example.test")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE portal_sessions SET api_token_sealed = :v WHERE id_hash = :h"),
            {"v": row["api_token_sealed"], "h": id_hash(t.id)},
        )
    with pytest.raises(ValueError):
        store.get(t.id, "customer")


def test_safe_next_stays_inside_the_portal() -> None:
    assert safe_next(CUSTOMER, "/portal/transfers?status=posted") == "/portal/transfers?status=posted"
    for evil in (
        "https://evil.example/portal/x",
        "//evil.example/portal/",
        "/ops/transfers",
        "/portal",
        "",
        None,
        "/portal/\\evil",
    ):
        assert safe_next(CUSTOMER, evil) == "/portal/"
    assert safe_next(STAFF, "/ops/review") == "/ops/review"


def test_problem_messages() -> None:
    assert messages.problem_message("insufficient_funds").startswith("Not enough available money")
    assert messages.problem_message("invalid_otp", {"attempts_left": 3}) == "That code is not correct. 3 attempts left."
    assert messages.problem_message("invalid_otp", {"attempts_left": 1}).endswith("1 attempt left.")
    assert "otp_locked" in messages.problem_message("invalid_otp", {"attempts_left": 0})
    assert messages.problem_message("something_new", {"detail": "Explained by the API."}) == "Explained by the API."
    assert messages.problem_message("something_new") == "The request was refused."
    # Every refusal code of the contract has a sentence of its own.
    contract = [
        "email_taken",
        "validation_error",
        "invalid_credentials",
        "unsupported_currency",
        "insufficient_funds",
        "same_account",
        "invalid_amount",
        "currency_mismatch",
        "account_frozen",
        "account_not_found",
        "invalid_otp",
        "otp_not_pending",
        "not_cancellable",
        "unsupported_pair",
        "idempotency_key_missing",
        "idempotency_key_reused",
        "idempotency_key_in_flight",
        "precondition_required",
        "version_conflict",
        "not_in_review",
        "not_reversible",
        "four_eyes_required",
        "forbidden",
        "unauthorized",
        "too_many_attempts",
    ]
    assert [code for code in contract if code not in messages.PROBLEM_MESSAGES] == []
    assert messages.failure_message("otp_locked").startswith("too many wrong codes")
    assert messages.status_label("pending_otp") == "Waiting for your code"


def test_navigation_by_role() -> None:
    def keys(role: str) -> list[str]:
        return [item.key for item in nav_for("staff", role)]

    # Everyone has Security (their own two-factor set-up), last.
    assert keys("auditor") == [
        *("transfers", "customers", "fx", "risk", "reconciliation", "pipeline", "audit", "security")
    ]
    assert keys("operator") == [
        *("transfers", "customers", "deposits", "reversals", "fx", "risk", "reconciliation", "pipeline", "security")
    ]
    assert keys("approver") == [
        *("transfers", "review", "customers", "reversals", "fx", "risk", "reconciliation", "pipeline", "security")
    ]
    assert len(keys("admin")) == 11
    assert not ops_page_allowed("audit", "operator") and ops_page_allowed("audit", "admin")
