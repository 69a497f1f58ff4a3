"""Routers of both realms. Each module holds one small router; `CUSTOMER_ROUTERS` mount under
/v1 and `OPS_ROUTERS` under /ops/v1. A new feature (ops reversals, reconciliation) adds its
module here, e.g. `api/routes/ops_reversals.py` appended to OPS_ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    accounts,
    customers,
    fx,
    limits,
    notifications,
    ops_accounts,
    ops_audit,
    ops_auth,
    ops_codec,
    ops_customers,
    ops_dead_letters,
    ops_deposits,
    ops_fx,
    ops_limits,
    ops_reconciliation,
    ops_retention,
    ops_reversals,
    ops_risk,
    ops_staff,
    ops_transfers,
    payees,
    standing_orders,
    totp,
    transfers,
)

CUSTOMER_ROUTERS: list[APIRouter] = [
    customers.router,
    accounts.router,
    transfers.router,
    payees.router,
    standing_orders.router,
    notifications.router,
    fx.router,
    totp.customer_router,
    limits.router,
]
OPS_ROUTERS: list[APIRouter] = [
    ops_auth.router,
    ops_staff.router,
    ops_customers.router,
    ops_accounts.router,
    ops_deposits.router,
    ops_transfers.router,
    ops_fx.router,
    ops_audit.router,
    ops_codec.router,
    ops_reversals.router,
    ops_reconciliation.router,
    ops_dead_letters.router,
    ops_retention.router,
    totp.ops_router,
    ops_limits.router,
    ops_risk.router,
    standing_orders.ops_router,
]
