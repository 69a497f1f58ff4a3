"""The customer portal (/portal/): sign-up, login, accounts, statements, transfers with their
OTP step and live status, and the inbox. Every read and write is a call to /v1."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from ledger import account_numbers
from portal import format as fmt
from portal import totp, web
from portal.apiclient import ApiProblem
from portal.fx_preview import Preview, destination_currency, preview
from portal.messages import TERMINAL_STATUSES, problem_message
from portal.web import CUSTOMER, Page

router = APIRouter(prefix=CUSTOMER.prefix, route_class=web.route_class(CUSTOMER), include_in_schema=False)

Anonymous = Annotated[Page, Depends(web.anonymous_page(CUSTOMER))]
Customer = Annotated[Page, Depends(web.signed_in_page(CUSTOMER))]
Cursor = Annotated[str | None, Query(max_length=512)]

# A double submit waits this long for the first request to finish, then shows its result.
IN_FLIGHT_WAIT_S = 20.0


def new_key() -> str:
    """An Idempotency-Key for one rendering of a money form (a hidden field): submitting the same
    rendering twice replays the first answer instead of moving money twice."""
    return str(uuid.uuid4())


# -- login, sign-up, logout -------------------------------------------------------------------


def _login_form(page: Page, template: str, status: int = 200, **context: Any) -> Response:
    token = web.login_form_token(page.request, CUSTOMER)
    response = page.render(template, status, login_csrf=token, **context)
    return web.with_login_cookie(page.request, CUSTOMER, response, token)


@router.get("/login")
async def login_form(page: Anonymous, next: str = "", reason: str = "") -> Response:
    if page.session is not None:
        return page.redirect(web.safe_next(CUSTOMER, next))
    return _login_form(page, "customer/login.html", next=next, notice=web.LOGIN_REASONS.get(reason, ""), email="")


@router.post("/login")
async def login(page: Anonymous) -> Response:
    email, password, target = page.field("email"), page.field("password", strip=False), page.field("next")
    code = page.field("totp")
    try:
        token = await totp.token_with_code(page, CUSTOMER, email, password, code)
    except ApiProblem as err:
        # The code field appears once the API says it is needed (or when one was already sent).
        show_code = err.code == "mfa_required" or bool(code)
        return _login_form(
            page,
            "customer/login.html",
            401,
            next=target,
            notice="",
            email=email,
            error=err.message,
            show_code=show_code,
        )
    response = await _signed_in(page, token, email, target)
    if await totp.needs_enrolment(str(token["access_token"]), page, CUSTOMER):
        # LEDGERFLOW_CUSTOMER_MFA=required and none set up yet: that comes first.
        response.headers["location"] = totp.security_url(CUSTOMER)
    return response


async def _signed_in(page: Page, token: dict[str, Any], email: str, target: str) -> Response:
    async with web.api_client(page.request, token["access_token"]) as api:
        profile = await api.get("/v1/me")
    session = await web.start_session(
        page,
        token,
        email=email,
        name=str(profile.get("full_name", "")),
        user_id=str(profile.get("customer_id", "")),
    )
    return web.finish_login(page, session, target)


@router.get("/signup")
async def signup_form(page: Anonymous) -> Response:
    return _login_form(page, "customer/signup.html", values={})


@router.post("/signup")
async def signup(page: Anonymous) -> Response:
    values = {"email": page.field("email"), "full_name": page.field("full_name")}
    password = page.field("password", strip=False)
    errors: dict[str, str] = {}
    if not values["full_name"]:
        errors["full_name"] = "Enter your name."
    if len(password) < 8:
        errors["password"] = "Use at least 8 characters."
    if password != page.field("password_confirm", strip=False):
        errors["password_confirm"] = "The two passwords differ."
    if errors:
        return _login_form(page, "customer/signup.html", 422, values=values, errors=errors)
    try:
        await page.api.call("POST", "/v1/signup", json={**values, "password": password})
        token = await page.api.call("POST", "/v1/auth/token", data={"username": values["email"], "password": password})
    except ApiProblem as err:
        field_errors = {".".join(e.get("loc", [])[1:]): e.get("msg", "") for e in err.body.get("errors", [])}
        return _login_form(
            page, "customer/signup.html", err.status, values=values, error=err.message, errors=field_errors
        )
    response = await _signed_in(page, token, values["email"], CUSTOMER.home_url)
    if page.session is not None:
        page.session.flash("ok", f"Welcome, {values['full_name']}. Open an account to get started.")
    return response


@router.post("/logout")
async def logout(page: Customer) -> Response:
    return await web.end_session(page)


# -- accounts --------------------------------------------------------------------------------


@router.get("/")
async def home(page: Customer) -> Response:
    return page.redirect(f"{CUSTOMER.prefix}/accounts")


async def _accounts(page: Page) -> list[dict[str, Any]]:
    body = await page.api.get("/v1/accounts")
    return list(body["items"])


@router.get("/accounts")
async def accounts(page: Customer) -> Response:
    limits = (await page.api.get("/v1/limits"))["limits"]
    return page.render("customer/accounts.html", accounts=await _accounts(page), form={}, error="", limits=limits)


@router.post("/accounts")
async def open_account(page: Customer) -> Response:
    currency, label = page.field("currency"), page.field("label")
    try:
        account = await page.api.call("POST", "/v1/accounts", json={"currency": currency, "label": label or None})
    except ApiProblem as err:
        return page.render(
            "customer/accounts.html",
            err.status,
            accounts=await _accounts(page),
            form={"currency": currency, "label": label},
            error=err.message,
        )
    page.flash("ok", f"Your {account['currency']} account is open.")
    return page.redirect(f"{CUSTOMER.prefix}/accounts")


@router.get("/accounts/{account_id}")
async def statement(page: Customer, account_id: UUID, cursor: Cursor = None) -> Response:
    account = await page.api.get(f"/v1/accounts/{account_id}")
    entries = await page.api.get(f"/v1/accounts/{account_id}/entries", limit=25, cursor=cursor)
    return page.render(
        "customer/statement.html",
        account=account,
        entries=entries["items"],
        next_cursor=entries["next_cursor"],
        first_page=cursor is None,
    )


# -- transfers -------------------------------------------------------------------------------


@router.get("/transfers")
async def transfers(page: Customer, status: str = "", cursor: Cursor = None) -> Response:
    body = await page.api.get("/v1/transfers", status=status or None, limit=25, cursor=cursor)
    return page.render(
        "customer/transfers.html", transfers=body["items"], next_cursor=body["next_cursor"], status=status
    )


async def _trusted_payees(page: Page) -> list[dict[str, Any]]:
    body = await page.api.get("/v1/payees")
    return [p for p in body["items"] if p["status"] == "trusted"]


async def _transfer_form(
    page: Page, accounts: list[dict[str, Any]], values: dict[str, str], status: int = 200, **extra: Any
) -> Response:
    return page.render(
        "customer/transfer_new.html",
        status,
        accounts=accounts,
        payees=await _trusted_payees(page),
        values=values,
        idempotency_key=new_key(),
        **{"error": "", "errors": {}, "preview": None, "preview_error": "", **extra},
    )


@router.get("/transfers/new")
async def new_transfer(page: Customer, source: str = "", destination: str = "", payee: str = "") -> Response:
    accounts = await _accounts(page)
    chosen = next((a for a in accounts if a["id"] == source), accounts[0] if accounts else None)
    values = {
        "source_account_id": chosen["id"] if chosen else "",
        "payee_id": payee,
        "destination_account_number": fmt.account_number(destination) if destination else "",
        "amount": "",
        "currency": chosen["currency"] if chosen else "",
        "description": "",
    }
    return await _transfer_form(page, accounts, values)


class FormInvalid(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(errors)


def _parse_transfer(values: dict[str, str], accounts: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the API body, the source account) from the form.

    Raises:
        FormInvalid: field -> message for what can be told before asking the API.
    """
    errors: dict[str, str] = {}
    source = next((a for a in accounts if a["id"] == values["source_account_id"]), None)
    if source is None:
        errors["source_account_id"] = "Choose one of your accounts."
    payee_id = values.get("payee_id", "")
    number = account_numbers.normalize(values["destination_account_number"])
    if payee_id:
        try:
            UUID(payee_id)
        except ValueError:
            errors["payee_id"] = "Choose one of your payees."
    elif not number:
        errors["destination_account_number"] = "Choose a payee or enter an account number (LF and 18 digits)."
    elif not account_numbers.is_valid(number):
        # The check digits catch a mistyped number before anything is looked up.
        errors["destination_account_number"] = "This account number is not valid: check it for a typing mistake."
    amount_minor = 0
    try:
        amount_minor = fmt.parse_amount(values["amount"], values["currency"])
    except fmt.AmountError as err:
        errors["amount"] = str(err)
    if errors:
        raise FormInvalid(errors)
    assert source is not None
    destination: dict[str, Any] = {"payee_id": payee_id} if payee_id else {"destination_account_number": number}
    body = {
        "source_account_id": values["source_account_id"],
        **destination,
        "amount_minor": amount_minor,
        "currency": values["currency"],
        "description": values["description"] or None,
    }
    return body, source


async def _preview_for(
    page: Page, accounts: list[dict[str, Any]], body: dict[str, Any], source: dict[str, Any]
) -> Preview | None:
    dest_currency = destination_currency(
        accounts, body.get("destination_account_number", ""), source["currency"], body["currency"]
    )
    if dest_currency is None:
        return None
    return await preview(
        page.api,
        source_currency=source["currency"],
        destination_currency=dest_currency,
        amount_minor=body["amount_minor"],
        currency=body["currency"],
    )


_TRANSFER_FIELDS = (
    "source_account_id",
    "payee_id",
    "destination_account_number",
    "amount",
    "currency",
    "description",
)


@router.post("/transfers/new")
async def create_transfer(page: Customer) -> Response:
    accounts = await _accounts(page)
    values = {name: page.field(name) for name in _TRANSFER_FIELDS}
    try:
        body, source = _parse_transfer(values, accounts)
    except FormInvalid as err:
        return await _transfer_form(page, accounts, values, 422, errors=err.errors)
    if page.field("action") == "preview":
        # The no-JavaScript path of the preview: the same form again, with the quote under it.
        try:
            quote = await _preview_for(page, accounts, body, source)
        except ApiProblem as err:
            return await _transfer_form(page, accounts, values, preview_error=err.message)
        return await _transfer_form(page, accounts, values, preview=quote)
    key = page.field("idempotency_key")
    if not key:
        return await _transfer_form(page, accounts, values, 400, error=problem_message("idempotency_key_missing"))
    try:
        transfer = await page.api.call(
            "POST", "/v1/transfers", json=body, headers={"Idempotency-Key": key}, in_flight_wait_s=IN_FLIGHT_WAIT_S
        )
    except ApiProblem as err:
        # A fresh key comes with the re-rendered form: the corrected request is a new one.
        return await _transfer_form(page, accounts, values, err.status, error=err.message)
    return page.redirect(f"{CUSTOMER.prefix}/transfers/{transfer['id']}")


@router.get("/transfers/quote")
async def transfer_quote(
    page: Customer,
    source_account_id: str = "",
    payee_id: str = "",
    destination_account_number: str = "",
    amount: str = "",
    currency: str = "",
) -> Response:
    """The preview as an HTML fragment, for static/transfer-form.js (empty when there is nothing to show)."""
    accounts = await _accounts(page)
    values = {
        "source_account_id": source_account_id,
        "payee_id": payee_id,
        "destination_account_number": destination_account_number,
        "amount": amount,
        "currency": currency,
        "description": "",
    }
    try:
        body, source = _parse_transfer(values, accounts)
    except FormInvalid:
        return JSONResponse({"html": ""})
    try:
        quote = await _preview_for(page, accounts, body, source)
        html = web.render_html("customer/_preview.html", preview=quote, preview_error="")
    except ApiProblem as err:
        html = web.render_html("customer/_preview.html", preview=None, preview_error=err.message)
    return JSONResponse({"html": html})


async def _status_context(page: Page, transfer: dict[str, Any]) -> dict[str, Any]:
    accounts = await _accounts(page)
    by_id = {a["id"]: a for a in accounts}
    return {
        "transfer": transfer,
        "source": by_id.get(transfer["source_account_id"]),
        "destination": by_id.get(transfer["destination_account_id"]),
        "terminal": transfer["status"] in TERMINAL_STATUSES,
    }


@router.get("/transfers/{transfer_id}")
async def transfer_page(page: Customer, transfer_id: UUID) -> Response:
    transfer = await page.api.get(f"/v1/transfers/{transfer_id}")
    context = await _status_context(page, transfer)
    if transfer["status"] == "pending_otp":
        return _otp_page(page, context)
    return page.render("customer/transfer_status.html", **context)


def _otp_page(page: Page, context: dict[str, Any], status: int = 200, error: str = "") -> Response:
    otp = context["transfer"].get("otp") or {}
    left = fmt.seconds_left(otp.get("expires_at"), datetime.now(UTC))
    return page.render("customer/transfer_otp.html", status, seconds_left=left, otp=otp, error=error, **context)


@router.get("/transfers/{transfer_id}/status")
async def transfer_status(page: Customer, transfer_id: UUID) -> Response:
    """For static/poll.js: the status panel as HTML, and whether to keep polling."""
    transfer = await page.api.get(f"/v1/transfers/{transfer_id}")
    context = await _status_context(page, transfer)
    html = web.render_html("customer/_status.html", **context)
    return JSONResponse({"status": transfer["status"], "terminal": context["terminal"], "html": html})


@router.post("/transfers/{transfer_id}/otp")
async def submit_otp(page: Customer, transfer_id: UUID) -> Response:
    code = page.field("code").replace(" ", "")
    url = f"{CUSTOMER.prefix}/transfers/{transfer_id}"
    if not code:
        transfer = await page.api.get(f"/v1/transfers/{transfer_id}")
        return _otp_page(page, await _status_context(page, transfer), 422, "Enter the 6-digit code from your inbox.")
    try:
        await page.api.call("POST", f"/v1/transfers/{transfer_id}/otp", json={"code": code})
    except ApiProblem as err:
        if err.code == "invalid_otp" and int(err.body.get("attempts_left") or 0) > 0:
            transfer = await page.api.get(f"/v1/transfers/{transfer_id}")
            if transfer["status"] == "pending_otp":
                return _otp_page(page, await _status_context(page, transfer), 422, err.message)
        if err.code in ("invalid_otp", "otp_not_pending", "otp_throttled", "workflow_timeout"):
            # The status page tells what the transfer is now (failed/otp_locked, expired, ...).
            page.flash("error", err.message)
            return page.redirect(url)
        raise
    return page.redirect(url)


@router.post("/transfers/{transfer_id}/cancel")
async def cancel_transfer(page: Customer, transfer_id: UUID) -> Response:
    try:
        await page.api.call("POST", f"/v1/transfers/{transfer_id}/cancel")
        page.flash("ok", "The transfer is cancelled and the money released.")
    except ApiProblem as err:
        if err.status == 404:
            raise
        page.flash("error", err.message)
    return page.redirect(f"{CUSTOMER.prefix}/transfers/{transfer_id}")


# -- inbox -----------------------------------------------------------------------------------


@router.get("/inbox")
async def inbox(page: Customer, cursor: Cursor = None) -> Response:
    body = await page.api.get("/v1/notifications", limit=25, cursor=cursor)
    return page.render(
        "customer/inbox.html", notifications=body["items"], next_cursor=body["next_cursor"], first_page=cursor is None
    )


# -- payees ----------------------------------------------------------------------------------


async def _payees_page(page: Page, status: int = 200, **extra: Any) -> Response:
    body = await page.api.get("/v1/payees")
    context: dict[str, Any] = {"payees": body["items"], "form": {}, "error": "", "errors": {}, **extra}
    return page.render("customer/payees.html", status, **context)


@router.get("/payees")
async def payees(page: Customer) -> Response:
    return await _payees_page(page)


@router.post("/payees")
async def add_payee(page: Customer) -> Response:
    form = {"name": page.field("name"), "account_number": page.field("account_number")}
    number = account_numbers.normalize(form["account_number"])
    if not account_numbers.is_valid(number):
        errors = {"account_number": "This account number is not valid: check it for a typing mistake."}
        return await _payees_page(page, 422, form=form, errors=errors)
    try:
        payee = await page.api.call("POST", "/v1/payees", json={"account_number": number, "name": form["name"]})
    except ApiProblem as err:
        return await _payees_page(page, err.status, form=form, error=err.message)
    page.flash("ok", f"We sent a code to your inbox to confirm {payee['name']}.")
    return page.redirect(f"{CUSTOMER.prefix}/payees#payee-{payee['id']}")


@router.post("/payees/{payee_id}/otp")
async def confirm_payee(page: Customer, payee_id: UUID) -> Response:
    code = page.field("code").replace(" ", "")
    try:
        payee = await page.api.call("POST", f"/v1/payees/{payee_id}/otp", json={"code": code or "x"})
    except ApiProblem as err:
        if err.status == 404:
            raise
        page.flash("error", err.message)
        return page.redirect(f"{CUSTOMER.prefix}/payees#payee-{payee_id}")
    page.flash("ok", f"{payee['name']} is now a trusted payee: payments to them need no code.")
    return page.redirect(f"{CUSTOMER.prefix}/payees")


@router.post("/payees/{payee_id}/delete")
async def delete_payee(page: Customer, payee_id: UUID) -> Response:
    await page.api.call("DELETE", f"/v1/payees/{payee_id}")
    page.flash("ok", "The payee is deleted. Payments to that account need a code again.")
    return page.redirect(f"{CUSTOMER.prefix}/payees")


# -- standing orders -------------------------------------------------------------------------


async def _orders_page(page: Page, status: int = 200, **extra: Any) -> Response:
    orders = await page.api.get("/v1/standing-orders")
    accounts = await _accounts(page)
    payees = await _trusted_payees(page)
    today = datetime.now(UTC).date().isoformat()
    context: dict[str, Any] = {
        "orders": orders["items"],
        "accounts": accounts,
        "payees": payees,
        "payee_names": {p["id"]: p["name"] for p in (await page.api.get("/v1/payees"))["items"]},
        "form": {"start_date": today, "frequency": "monthly"},
        "today": today,
        "idempotency_key": new_key(),
        "error": "",
        "errors": {},
        **extra,
    }
    return page.render("customer/standing_orders.html", status, **context)


@router.get("/standing-orders")
async def standing_orders(page: Customer) -> Response:
    return await _orders_page(page)


_ORDER_FIELDS = (
    "source_account_id",
    "payee_id",
    "amount",
    "currency",
    "frequency",
    "start_date",
    "end_date",
    "description",
)


@router.post("/standing-orders")
async def create_standing_order(page: Customer) -> Response:
    form = {name: page.field(name) for name in _ORDER_FIELDS}
    try:
        amount_minor = fmt.parse_amount(form["amount"], form["currency"])
    except fmt.AmountError as err:
        return await _orders_page(page, 422, form=form, errors={"amount": str(err)})
    body = {
        "source_account_id": form["source_account_id"],
        "payee_id": form["payee_id"],
        "amount_minor": amount_minor,
        "currency": form["currency"],
        "frequency": form["frequency"],
        "start_date": form["start_date"],
        "end_date": form["end_date"] or None,
        "description": form["description"] or None,
    }
    try:
        order = await page.api.call(
            "POST",
            "/v1/standing-orders",
            json=body,
            headers={"Idempotency-Key": page.field("idempotency_key") or new_key()},
            in_flight_wait_s=IN_FLIGHT_WAIT_S,
        )
    except ApiProblem as err:
        return await _orders_page(page, err.status, form=form, error=err.message)
    page.flash("ok", "We sent a code to your inbox: enter it below to approve the standing order.")
    return page.redirect(f"{CUSTOMER.prefix}/standing-orders#order-{order['id']}")


@router.post("/standing-orders/{order_id}/{action}")
async def standing_order_action(page: Customer, order_id: UUID, action: str) -> Response:
    if action not in ("otp", "pause", "resume", "cancel"):
        return page.redirect(f"{CUSTOMER.prefix}/standing-orders")
    body = {"code": page.field("code").replace(" ", "") or "x"} if action == "otp" else None
    try:
        order = await page.api.call("POST", f"/v1/standing-orders/{order_id}/{action}", json=body)
    except ApiProblem as err:
        if err.status == 404:
            raise
        page.flash("error", err.message)
        return page.redirect(f"{CUSTOMER.prefix}/standing-orders#order-{order_id}")
    done = {"otp": "approved", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
    page.flash("ok", f"The standing order is {done}.")
    return page.redirect(f"{CUSTOMER.prefix}/standing-orders#order-{order['id']}")
