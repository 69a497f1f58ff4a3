"""A customer's own limits and what is left of them (/v1/limits).

One entry per currency the customer holds an account in or has a limit for, with what the
current UTC day and the last hour used (the same figures the limit check reads).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from api.deps import CurrentCustomer, EngineDep
from api.schemas_risk import CustomerLimit, CustomerLimits
from ledger.uow import UnitOfWork
from risk import limits as risk_limits

router = APIRouter(tags=["customer: limits"])


def _remaining(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


@router.get("/limits", response_model=CustomerLimits, summary="Your limits and what is left today")
def get_limits(customer: CurrentCustomer, engine: EngineDep) -> CustomerLimits:
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        now_row = conn.execute("SELECT now()").fetchone()
        assert now_row is not None
        now = now_row[0]
        currencies = {
            str(r[0])
            for r in conn.execute(
                "SELECT currency FROM accounts WHERE customer_id = %s "
                "UNION SELECT elem ->> 'currency' FROM limit_sets, jsonb_array_elements(limits) AS elem "
                "WHERE scope IN (%s, 'default')",
                (customer.id, str(customer.id)),
            ).fetchall()
        }
        items: list[CustomerLimit] = []
        for currency in sorted(currencies):
            lim = risk_limits.effective_limits(conn, customer.id, currency) or risk_limits.CurrencyLimits(currency)
            used = risk_limits.usage(conn, customer.id, currency, now)
            items.append(
                CustomerLimit(
                    currency=currency,
                    per_transfer_max_minor=lim.per_transfer_max_minor,
                    daily_max_minor=lim.daily_max_minor,
                    hourly_count_max=lim.hourly_count_max,
                    daily_used_minor=used.daily_used_minor,
                    daily_remaining_minor=_remaining(lim.daily_max_minor, used.daily_used_minor),
                    hourly_count_used=used.hourly_count,
                    hourly_remaining_count=_remaining(lim.hourly_count_max, used.hourly_count),
                    day_resets_at=risk_limits.day_start(now) + timedelta(days=1),
                )
            )
        uow.commit()
    return CustomerLimits(limits=items)
