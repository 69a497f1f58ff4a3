"""The operations portal (/ops/): transfers with legs, events and the Temporal link, the review
queue, accounts (freeze with If-Match), deposits, reversals (maker-checker), FX rates,
reconciliation and the audit log. Every read and write is a call to /ops/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from ledger import account_numbers
from ledger.states import ReconRunStatus, ReversalStatus, TransferStatus
from portal import format as fmt
from portal import totp, web
from portal.apiclient import ApiProblem
from portal.messages import problem_message
from portal.nav import ops_page_allowed
from portal.web import STAFF, Page, PageError

router = APIRouter(prefix=STAFF.prefix, route_class=web.route_class(STAFF), include_in_schema=False)

Anonymous = Annotated[Page, Depends(web.anonymous_page(STAFF))]
_signed_in = web.signed_in_page(STAFF)
# Signed in, with or without a second factor (logout; the enrolment pages are portal/totp.py).
SignedIn = Annotated[Page, Depends(_signed_in)]


async def _enrolled(page: SignedIn) -> Page:
    """Staff need TOTP: until it is on, every ops page answers 403 with a link to set it up."""
    await totp.require_enrolled(page)
    return page


Staff = Annotated[Page, Depends(_enrolled)]
Cursor = Annotated[str | None, Query(max_length=512)]

TRANSFER_STATUSES = tuple(TransferStatus)
# Reconciliation run statuses after which nothing changes (the poller stops there).
RUN_DONE = frozenset({ReconRunStatus.PASSED, ReconRunStatus.FAILED})


def require(page: Page, key: str) -> None:
    """Refuse a page the signed-in role is not meant to use (opened by hand: the nav hides it).

    Raises:
        PageError: 403.
    """
    role = page.signed_in.role
    if not ops_page_allowed(key, role):
        raise PageError(403, "Not allowed", f"Your role ({role}) cannot use this page.")


def new_key() -> str:
    return str(uuid.uuid4())


# -- login and logout --------------------------------------------------------------------------


def _login_form(page: Page, status: int = 200, **context: Any) -> Response:
    token = web.login_form_token(page.request, STAFF)
    context = {"next": "", "notice": "", "email": "", "error": "", "code_error": False, **context}
    response = page.render("ops/login.html", status, login_csrf=token, **context)
    return web.with_login_cookie(page.request, STAFF, response, token)


@router.get("/login")
async def login_form(page: Anonymous, next: str = "", reason: str = "") -> Response:
    if page.session is not None:
        return page.redirect(web.safe_next(STAFF, next))
    return _login_form(page, next=next, notice=web.LOGIN_REASONS.get(reason, ""))


@router.post("/login")
async def login(page: Anonymous) -> Response:
    email, password, target = page.field("email"), page.field("password", strip=False), page.field("next")
    try:
        token = await totp.token_with_code(page, STAFF, email, password, page.field("totp"))
    except ApiProblem as err:
        code_error = err.code in ("mfa_required", "invalid_credentials")
        return _login_form(page, 401, next=target, email=email, error=err.message, code_error=code_error)
    async with web.api_client(page.request, token["access_token"]) as api:
        me = await api.get("/ops/v1/staff/me")
    session = await web.start_session(
        page, token, email=str(me["email"]), role=str(me["role"]), user_id=str(me.get("staff_id", ""))
    )
    if await totp.needs_enrolment(str(token["access_token"]), page, STAFF):
        # Nothing else is open to them yet: straight to setting up the authenticator app.
        target = totp.security_url(STAFF)
    return web.finish_login(page, session, target)


@router.post("/logout")
async def logout(page: SignedIn) -> Response:
    return await web.end_session(page)


@router.get("/")
async def home(page: Staff) -> Response:
    return page.redirect(f"{STAFF.prefix}/transfers")


# -- transfers ---------------------------------------------------------------------------------


async def _customer_filter(page: Page, customer: str) -> tuple[str | None, list[dict[str, Any]], str]:
    """(customer id to filter by, customers to choose from, message) for what was typed:
    a customer id, or part of an e-mail address."""
    if not customer:
        return None, [], ""
    try:
        return str(UUID(customer)), [], ""
    except ValueError:
        pass
    found = (await page.api.get("/ops/v1/customers", email=customer, limit=20))["items"]
    if len(found) == 1:
        return str(found[0]["customer_id"]), [], ""
    if not found:
        return None, [], f"No customer's e-mail contains “{customer}”."
    return None, found, "Several customers match: pick one."


@router.get("/transfers")
async def transfers(page: Staff, status: str = "", customer: str = "", cursor: Cursor = None) -> Response:
    customer_id, choices, notice = await _customer_filter(page, customer)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if not customer or customer_id:
        body = await page.api.get(
            "/ops/v1/transfers", status=status or None, customer_id=customer_id, limit=50, cursor=cursor
        )
        items, next_cursor = body["items"], body["next_cursor"]
    return page.render(
        "ops/transfers.html",
        transfers=items,
        next_cursor=next_cursor,
        first_page=cursor is None,
        status=status,
        customer=customer,
        choices=choices,
        notice=notice,
        statuses=TRANSFER_STATUSES,
    )


@router.get("/transfers/{transfer_id}")
async def transfer(page: Staff, transfer_id: UUID) -> Response:
    body = await page.api.get(f"/ops/v1/transfers/{transfer_id}")
    reversals: list[dict[str, Any]] = []
    try:
        reversals = list((await page.api.get("/ops/v1/reversals", transfer_id=str(transfer_id)))["items"])
    except ApiProblem as err:
        if not err.route_missing:
            raise
    return page.render("ops/transfer.html", transfer=body, reversals=reversals, reversal_key=new_key())


async def _decide(page: Page, transfer_id: UUID, decision: str) -> Response:
    reason = page.field("reason")
    back = f"{STAFF.prefix}/review" if page.field("back") == "review" else f"{STAFF.prefix}/transfers/{transfer_id}"
    try:
        result = await page.api.call("POST", f"/ops/v1/transfers/{transfer_id}/{decision}", json={"reason": reason})
    except ApiProblem as err:
        if err.status == 404 and not err.route_missing:
            raise
        page.flash("error", err.message)
        return page.redirect(back)
    verb = "approved" if decision == "approve" else "rejected"
    page.flash("ok", f"Transfer {fmt.short_id(transfer_id)} {verb}; it is now {result['status']}.")
    return page.redirect(back)


@router.post("/transfers/{transfer_id}/approve")
async def approve(page: Staff, transfer_id: UUID) -> Response:
    return await _decide(page, transfer_id, "approve")


@router.post("/transfers/{transfer_id}/reject")
async def reject(page: Staff, transfer_id: UUID) -> Response:
    return await _decide(page, transfer_id, "reject")


@router.get("/review")
async def review(page: Staff, cursor: Cursor = None) -> Response:
    require(page, "review")
    body = await page.api.get("/ops/v1/transfers", status=TransferStatus.IN_REVIEW, limit=50, cursor=cursor)
    return page.render(
        "ops/review.html", transfers=body["items"], next_cursor=body["next_cursor"], first_page=cursor is None
    )


# -- reversals (maker-checker) -------------------------------------------------------------------

REVERSAL_STATUSES = tuple(ReversalStatus)


@router.post("/transfers/{transfer_id}/reversals")
async def request_reversal(page: Staff, transfer_id: UUID) -> Response:
    reason = page.field("reason")
    back = f"{STAFF.prefix}/transfers/{transfer_id}"
    if not reason:
        page.flash("error", "Give a reason for the reversal.")
        return page.redirect(back)
    try:
        reversal = await page.api.call(
            "POST",
            f"/ops/v1/transfers/{transfer_id}/reversals",
            json={"reason": reason},
            # Optional for this route: with it, a double submit requests one reversal.
            headers={"Idempotency-Key": page.field("idempotency_key") or new_key()},
            in_flight_wait_s=10.0,
        )
    except ApiProblem as err:
        page.flash("error", _reversal_message(err))
        return page.redirect(back)
    page.flash(
        "ok",
        f"Reversal {reversal['id']} requested. A second staff member with the approver role must approve it.",
    )
    return page.redirect(f"{STAFF.prefix}/reversals", id=str(reversal["id"]))


def _reversal_message(err: ApiProblem) -> str:
    if err.route_missing:
        return "Reversals are not available on this server yet."
    return err.message


@router.get("/reversals")
async def reversals(page: Staff, id: str = "", status: str = "pending_approval", cursor: Cursor = None) -> Response:
    require(page, "reversals")
    items: list[dict[str, Any]] | None = None
    next_cursor = None
    try:
        body = await page.api.get(
            "/ops/v1/reversals", status=status if status in REVERSAL_STATUSES else None, limit=50, cursor=cursor
        )
        items, next_cursor = list(body.get("items", [])), body.get("next_cursor")
    except ApiProblem as err:
        # No list route (yet): the page still approves by id.
        if not err.route_missing:
            raise
    return page.render(
        "ops/reversals.html",
        reversals=items,
        next_cursor=next_cursor,
        first_page=cursor is None,
        reversal_id=id,
        status=status,
        statuses=REVERSAL_STATUSES,
    )


def _reversal_id(page: Page) -> str | None:
    try:
        return str(UUID(page.field("reversal_id")))
    except ValueError:
        page.flash("error", "Enter the reversal's id (it looks like 0190a1b2-...).")
        return None


@router.post("/reversals/approve")
async def approve_reversal(page: Staff) -> Response:
    reversal_id = _reversal_id(page)
    if reversal_id is None:
        return page.redirect(f"{STAFF.prefix}/reversals")
    body: dict[str, Any] = {"force": page.field("force") == "on"}
    if page.field("reason"):
        body["reason"] = page.field("reason")
    try:
        result = await page.api.call("POST", f"/ops/v1/reversals/{reversal_id}/approve", json=body)
    except ApiProblem as err:
        page.flash("error", _reversal_message(err))
        return page.redirect(f"{STAFF.prefix}/reversals", id=reversal_id)
    shortfall = int(result.get("shortfall_minor") or 0)
    covered = (
        f" The payee's shortfall of {fmt.format_money(shortfall, str(result.get('shortfall_currency')))} "
        "was covered from settlement."
        if shortfall
        else ""
    )
    page.flash("ok", f"Reversal {reversal_id} approved: the compensating entries are posted.{covered}")
    transfer_id = result.get("transfer_id")
    return page.redirect(f"{STAFF.prefix}/transfers/{transfer_id}" if transfer_id else f"{STAFF.prefix}/reversals")


@router.post("/reversals/reject")
async def reject_reversal(page: Staff) -> Response:
    reversal_id = _reversal_id(page)
    if reversal_id is None:
        return page.redirect(f"{STAFF.prefix}/reversals")
    reason = page.field("reason")
    if not reason:
        page.flash("error", "Give a reason for rejecting the reversal.")
        return page.redirect(f"{STAFF.prefix}/reversals", id=reversal_id)
    try:
        await page.api.call("POST", f"/ops/v1/reversals/{reversal_id}/reject", json={"reason": reason})
    except ApiProblem as err:
        page.flash("error", _reversal_message(err))
        return page.redirect(f"{STAFF.prefix}/reversals", id=reversal_id)
    page.flash("ok", f"Reversal {reversal_id} rejected; the transfer stays posted.")
    return page.redirect(f"{STAFF.prefix}/reversals")


# -- customers and accounts ------------------------------------------------------------------


@router.get("/customers")
async def customers(page: Staff, email: str = "", cursor: Cursor = None) -> Response:
    body = await page.api.get("/ops/v1/customers", email=email or None, limit=50, cursor=cursor)
    return page.render(
        "ops/customers.html",
        customers=body["items"],
        next_cursor=body["next_cursor"],
        first_page=cursor is None,
        email=email,
    )


async def _customer_page(page: Page, customer_id: UUID, status: int = 200, error: str = "") -> Response:
    body = await page.api.get(f"/ops/v1/customers/{customer_id}")
    response = await page.api.send("GET", f"/ops/v1/customers/{customer_id}/limits")
    limits = response.json() if response.status_code == 200 else {"limits": [], "version": 0}
    # The version shown travels with the form and comes back as If-Match.
    version = response.headers.get("etag", f'"{limits["version"]}"').strip('"')
    orders = await page.api.get("/ops/v1/standing-orders", customer_id=str(customer_id), limit=200)
    return page.render(
        "ops/customer.html",
        status,
        customer=body,
        limits=limits,
        version=version,
        error=error,
        standing_orders=orders["items"],
    )


@router.get("/customers/{customer_id}")
async def customer(page: Staff, customer_id: UUID) -> Response:
    return await _customer_page(page, customer_id)


def _limit_field(page: Page, name: str) -> int | None:
    """An optional whole number from the form (empty: no limit). Raises ValueError."""
    raw = page.field(name).replace(",", "").replace(" ", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError(name)
    return int(raw)


async def save_currency_limits(page: Page, path: str) -> str:
    """Set one currency's limits at `path` (a customer's, or the defaults) from the form: minor
    units and a count, the other currencies as they are, the form's version as If-Match.
    Returns the flash text.

    Raises:
        ValueError: a field that is not a whole number (nothing sent).
        ApiProblem: the API's refusal (version_conflict when someone else saved first).
    """
    currency, version = page.field("currency").upper(), page.field("version")
    entry = {
        "currency": currency,
        "per_transfer_max_minor": _limit_field(page, "per_transfer_max_minor"),
        "daily_max_minor": _limit_field(page, "daily_max_minor"),
        "hourly_count_max": _limit_field(page, "hourly_count_max"),
    }
    current = await page.api.get(path)
    others = [item for item in current["limits"] if item["currency"] != currency]
    keep = any(entry[k] is not None for k in ("per_transfer_max_minor", "daily_max_minor", "hourly_count_max"))
    limits = sorted([*others, entry] if keep else others, key=lambda item: str(item["currency"]))
    await page.api.call("PUT", path, json={"limits": limits}, headers={"If-Match": f'"{version}"'} if version else {})
    return f"The {currency} limits are saved." if keep else f"The {currency} limits are removed."


LIMITS_CONFLICT = "Someone else changed these limits — reload the page to see them."


@router.post("/customers/{customer_id}/limits")
async def set_customer_limits(page: Staff, customer_id: UUID) -> Response:
    """Set one currency's limits (minor units, and a count); the others stay as they are."""
    try:
        saved = await save_currency_limits(page, f"/ops/v1/customers/{customer_id}/limits")
    except ValueError:
        return await _customer_page(page, customer_id, 422, error=problem_message("invalid_limits"))
    except ApiProblem as err:
        if err.code == "version_conflict":
            return await _customer_page(page, customer_id, 409, error=LIMITS_CONFLICT)
        if err.status == 404 and not err.route_missing:
            raise
        return await _customer_page(page, customer_id, err.status, error=err.message)
    page.flash("ok", saved)
    return page.redirect(f"{STAFF.prefix}/customers/{customer_id}")


@router.get("/accounts")
async def find_account(page: Staff, id: str = "") -> Response:
    try:
        return page.redirect(f"{STAFF.prefix}/accounts/{UUID(id.strip())}")
    except ValueError:
        pass
    # An account number as people write it (LF.. in fours); the API checks its digits.
    try:
        account = await page.api.get("/ops/v1/accounts", account_number=id)
    except ApiProblem as err:
        if err.status not in (404, 422):
            raise
        page.flash("error", "Enter an account number (LF and 18 digits) or an account id.")
        return page.redirect(f"{STAFF.prefix}/customers")
    return page.redirect(f"{STAFF.prefix}/accounts/{account['id']}")


async def _account_page(page: Page, account_id: UUID, status: int = 200, **context: Any) -> Response:
    response = await page.api.send("GET", f"/ops/v1/accounts/{account_id}")
    if response.status_code >= 400:
        await page.api.call("GET", f"/ops/v1/accounts/{account_id}")  # raises the problem
    account = response.json()
    # The version this page shows travels with its forms and comes back as If-Match.
    version = response.headers.get("etag", f'"{account["version"]}"').strip('"')
    context = {"error": "", "deposit_key": new_key(), "deposit_values": {}, **context}
    return page.render("ops/account.html", status, account=account, version=version, **context)


@router.get("/accounts/{account_id}")
async def account(page: Staff, account_id: UUID) -> Response:
    return await _account_page(page, account_id)


@router.post("/accounts/{account_id}/status")
async def set_account_status(page: Staff, account_id: UUID) -> Response:
    new_status, version = page.field("status"), page.field("version")
    try:
        await page.api.call(
            "PATCH",
            f"/ops/v1/accounts/{account_id}",
            json={"status": new_status},
            headers={"If-Match": f'"{version}"'} if version else {},
        )
    except ApiProblem as err:
        if err.code == "version_conflict":
            return await _account_page(
                page,
                account_id,
                409,
                error="Someone else changed this account — reload the page to see it as it is now.",
            )
        if err.status == 404 and not err.route_missing:
            raise
        return await _account_page(page, account_id, err.status, error=err.message)
    page.flash("ok", "The account is now frozen." if new_status == "frozen" else f"The account is now {new_status}.")
    return page.redirect(f"{STAFF.prefix}/accounts/{account_id}")


# -- deposits ----------------------------------------------------------------------------------


def _deposit_form(
    page: Page, values: dict[str, str], status: int = 200, error: str = "", errors: dict[str, str] | None = None
) -> Response:
    return page.render("ops/deposit.html", status, values=values, key=new_key(), error=error, errors=errors or {})


@router.get("/deposits")
async def deposit_form(page: Staff, account: str = "", currency: str = "") -> Response:
    require(page, "deposits")
    return _deposit_form(page, {"account_id": account, "currency": currency, "amount": "", "external_reference": ""})


@router.post("/deposits")
async def deposit(page: Staff) -> Response:
    require(page, "deposits")
    values = {name: page.field(name) for name in ("account_id", "currency", "amount", "external_reference")}
    errors: dict[str, str] = {}
    account_id = values["account_id"]
    try:
        UUID(account_id)
    except ValueError:
        # An account number as people write it: checked here, then resolved to the account.
        number = account_numbers.normalize(account_id)
        if not account_numbers.is_valid(number):
            errors["account_id"] = "Enter the account number (LF and 18 digits): this one has a typing mistake."
        else:
            try:
                account_id = str((await page.api.get("/ops/v1/accounts", account_number=number))["id"])
            except ApiProblem as err:
                errors["account_id"] = err.message
    amount_minor = 0
    try:
        amount_minor = fmt.parse_amount(values["amount"], values["currency"])
    except fmt.AmountError as err:
        errors["amount"] = str(err)
    if not values["external_reference"]:
        errors["external_reference"] = "Enter the reference of the incoming payment (e.g. the wire id)."
    if errors:
        return _deposit_form(page, values, 422, errors=errors)
    try:
        result = await page.api.call(
            "POST",
            "/ops/v1/deposits",
            json={
                "account_id": account_id,
                "amount_minor": amount_minor,
                "currency": values["currency"],
                "external_reference": values["external_reference"],
            },
            headers={"Idempotency-Key": page.field("idempotency_key") or new_key()},
            in_flight_wait_s=10.0,
        )
    except ApiProblem as err:
        return _deposit_form(page, values, err.status, error=err.message)
    page.flash("ok", f"Deposited {fmt.format_money(result['amount_minor'], result['currency'])}.")
    return page.redirect(f"{STAFF.prefix}/accounts/{result['account_id']}")


# -- FX rates ----------------------------------------------------------------------------------


async def _fx_page(page: Page, status: int = 200, error: str = "", values: dict[str, str] | None = None) -> Response:
    body = await page.api.get("/ops/v1/fx/rates")
    return page.render("ops/fx.html", status, rates=body["items"], error=error, values=values or {})


@router.get("/fx")
async def fx_rates(page: Staff) -> Response:
    return await _fx_page(page)


@router.post("/fx")
async def set_fx_rate(page: Staff) -> Response:
    values = {name: page.field(name) for name in ("base", "quote", "rate", "spread_bps")}
    base, quote = values["base"].upper(), values["quote"].upper()
    if not (len(base) == len(quote) == 3 and base.isalpha() and quote.isalpha()):
        return await _fx_page(page, 422, "Give both currencies as 3-letter codes.", values)
    try:
        spread = int(values["spread_bps"] or "0")
    except ValueError:
        return await _fx_page(page, 422, "The spread is a whole number of basis points (25 = 0.25%).", values)
    try:
        await page.api.call(
            "PUT", f"/ops/v1/fx/rates/{base}/{quote}", json={"rate": values["rate"], "spread_bps": spread}
        )
    except ApiProblem as err:
        return await _fx_page(page, err.status, err.message, values)
    page.flash("ok", f"{base}/{quote} is now {values['rate']} (spread {fmt.format_bps(spread)}).")
    return page.redirect(f"{STAFF.prefix}/fx")


# -- reconciliation ------------------------------------------------------------------------------


def _run_done(run: dict[str, Any]) -> bool:
    return bool(run.get("finished_at")) or str(run.get("status", "")) in RUN_DONE


@router.get("/reconciliation")
async def reconciliation(page: Staff, id: str = "") -> Response:
    if id:
        try:
            return page.redirect(f"{STAFF.prefix}/reconciliation/{UUID(id.strip())}")
        except ValueError:
            page.flash("error", "Enter a run id (it looks like 0190a1b2-...).")
    runs: list[dict[str, Any]] | None = None
    available = True
    try:
        body = await page.api.get("/ops/v1/reconciliation/runs", limit=20)
        runs = list(body.get("items", []))
    except ApiProblem as err:
        if not (err.route_missing or err.status in (404, 405, 422)):
            raise
        # A 405 means the runs route exists but lists nothing: runs can still be started.
        available = err.status == 405
    return page.render("ops/reconciliation.html", runs=runs, available=available)


@router.post("/reconciliation")
async def start_reconciliation(page: Staff) -> Response:
    try:
        run = await page.api.call("POST", "/ops/v1/reconciliation/runs")
    except ApiProblem as err:
        page.flash("error", "Reconciliation is not available on this server yet." if err.route_missing else err.message)
        return page.redirect(f"{STAFF.prefix}/reconciliation")
    page.flash("ok", "Reconciliation run started.")
    return page.redirect(f"{STAFF.prefix}/reconciliation/{run['id']}")


@router.get("/reconciliation/{run_id}")
async def reconciliation_run(page: Staff, run_id: UUID) -> Response:
    run = await _get_run(page, run_id)
    return page.render("ops/reconciliation_run.html", run=run, done=_run_done(run))


@router.get("/reconciliation/{run_id}/status")
async def reconciliation_status(page: Staff, run_id: UUID) -> Response:
    run = await _get_run(page, run_id)
    html = web.render_html("ops/_run.html", run=run)
    return JSONResponse({"status": run.get("status", ""), "terminal": _run_done(run), "html": html})


async def _get_run(page: Page, run_id: UUID) -> dict[str, Any]:
    try:
        return dict(await page.api.get(f"/ops/v1/reconciliation/runs/{run_id}"))
    except ApiProblem as err:
        if err.route_missing:
            raise PageError(404, "Not available", "Reconciliation is not available on this server yet.") from err
        raise


# -- event pipeline ------------------------------------------------------------------------------


@router.get("/pipeline")
async def pipeline(page: Staff) -> Response:
    """Where the relay stands, the last retention sweep, and what the relay and the consumers
    set aside: parked outbox rows and open dead letters."""
    require(page, "pipeline")
    relay = await page.api.get("/ops/v1/outbox/relay")
    parked = await page.api.get("/ops/v1/outbox/parked", limit=50)
    letters = await page.api.get("/ops/v1/dead-letters", limit=50)
    retention = await page.api.get("/ops/v1/retention", limit=1)
    return page.render(
        "ops/pipeline.html",
        relay=relay,
        retention=retention,
        parked=parked["items"],
        more_parked=parked["next_cursor"] is not None,
        letters=letters["items"],
        more_letters=letters["next_cursor"] is not None,
    )


# -- audit log -----------------------------------------------------------------------------------


@router.get("/audit")
async def audit_log(page: Staff, action: str = "", outcome: str = "", cursor: Cursor = None) -> Response:
    require(page, "audit")
    body = await page.api.get(
        "/ops/v1/audit-log", action=action or None, outcome=outcome or None, limit=50, cursor=cursor
    )
    return page.render(
        "ops/audit.html",
        entries=body["items"],
        next_cursor=body["next_cursor"],
        first_page=cursor is None,
        action=action,
        outcome=outcome,
    )
