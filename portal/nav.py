"""Navigation of both portals, and which staff roles each ops page is for.

The API is the authority on permissions (its 403 is shown as a page); this table only keeps
the ops portal from offering a page to a role that cannot use it, and refuses such a page
before calling the API when it is opened by hand. Admin is every role, as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ALL_STAFF: Final = ("operator", "approver", "auditor", "admin")


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str
    roles: tuple[str, ...] = ALL_STAFF


CUSTOMER_NAV: Final = (
    NavItem("accounts", "Accounts", "/portal/accounts"),
    NavItem("send", "Send money", "/portal/transfers/new"),
    NavItem("transfers", "Transfers", "/portal/transfers"),
    NavItem("payees", "Payees", "/portal/payees"),
    NavItem("standing-orders", "Standing orders", "/portal/standing-orders"),
    NavItem("inbox", "Inbox", "/portal/inbox"),
    NavItem("security", "Security", "/portal/security"),
)

OPS_NAV: Final = (
    NavItem("transfers", "Transfers", "/ops/transfers"),
    NavItem("review", "Review queue", "/ops/review", ("approver", "admin")),
    NavItem("customers", "Customers", "/ops/customers"),
    NavItem("deposits", "Deposits", "/ops/deposits", ("operator", "admin")),
    NavItem("reversals", "Reversals", "/ops/reversals", ("operator", "approver", "admin")),
    NavItem("fx", "FX rates", "/ops/fx"),
    NavItem("risk", "Limits & risk", "/ops/risk"),
    NavItem("reconciliation", "Reconciliation", "/ops/reconciliation"),
    NavItem("pipeline", "Event pipeline", "/ops/pipeline"),
    NavItem("audit", "Audit log", "/ops/audit", ("auditor", "admin")),
    NavItem("security", "Security", "/ops/security"),
)
_OPS_BY_KEY: Final = {item.key: item for item in OPS_NAV}


def allowed(role: str, *roles: str) -> bool:
    """Whether a staff `role` may use something meant for `roles` (admin may use everything)."""
    return role == "admin" or role in roles


def ops_page_allowed(key: str, role: str) -> bool:
    return allowed(role, *_OPS_BY_KEY[key].roles)


def nav_for(realm: str, role: str) -> list[NavItem]:
    if realm == "customer":
        return list(CUSTOMER_NAV)
    return [item for item in OPS_NAV if allowed(role, *item.roles)]
