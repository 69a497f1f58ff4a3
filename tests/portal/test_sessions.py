"""portal/sessions.py and the small pure parts of portal/web.py and portal/messages.py."""

from __future__ import annotations

from portal import messages
from portal.nav import nav_for, ops_page_allowed
from portal.sessions import IDLE_TIMEOUT_S, TOKEN_MARGIN_S, SessionStore
from portal.web import CUSTOMER, STAFF, safe_next


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_lifecycle() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    s = store.create("customer", "api-token", 8 * 3600, email="a@example.test", name="A")
    assert len(s.id) >= 43 and len(s.csrf_token) >= 43 and s.id != s.csrf_token
    assert store.get(s.id, "customer") is s
    # Sessions carry their realm: the same id is nothing in the other one.
    assert store.get(s.id, "staff") is None
    assert store.get("guess", "customer") is None and store.get(None, "customer") is None

    # Idle timeout slides with use ...
    clock.now += IDLE_TIMEOUT_S - 1
    assert store.get(s.id, "customer") is s
    clock.now += IDLE_TIMEOUT_S - 1
    assert store.get(s.id, "customer") is s
    # ... and ends after 30 minutes without a request.
    clock.now += IDLE_TIMEOUT_S + 1
    assert store.get(s.id, "customer") is None
    assert store.expired(s.id) is s
    assert store.expired(s.id) is None and len(store) == 0


def test_session_ends_with_its_api_token() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    s = store.create("staff", "t", 600, email="ops@example.test", role="operator")
    for _ in range(25):  # busy all along, never idle
        clock.now += 19
        assert store.get(s.id, "staff") is s
    clock.now = 1000.0 + 600 - TOKEN_MARGIN_S
    assert store.get(s.id, "staff") is None
    assert [x.id for x in store.sweep()] == [s.id]


def test_drop_and_flash() -> None:
    store = SessionStore()
    s = store.create("customer", "t", 3600, email="a@example.test")
    s.flash("ok", "done")
    assert s.take_flashes() == [("ok", "done")] and s.take_flashes() == []
    assert store.drop(s.id) is s and store.get(s.id, "customer") is None and store.drop(s.id) is None


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
    assert keys("auditor") == ["transfers", "customers", "fx", "reconciliation", "pipeline", "audit", "security"]
    assert keys("operator") == [
        *("transfers", "customers", "deposits", "reversals", "fx", "reconciliation", "pipeline", "security")
    ]
    assert keys("approver") == [
        *("transfers", "review", "customers", "reversals", "fx", "reconciliation", "pipeline", "security")
    ]
    assert len(keys("admin")) == 10
    assert not ops_page_allowed("audit", "operator") and ops_page_allowed("audit", "admin")
