"""Standing-order activities: claim a run for its date and describe its transfer."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy.engine import Engine
from temporalio import activity

from contracts.standing_order import BeginRunInput, BeginRunResult
from contracts.transfer import TransferRequest
from ledger import standing_orders
from ledger.payees import ScaExemption
from ledger.uow import UnitOfWork


class StandingOrderActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="begin_standing_order_run")
    def begin_run(self, request: BeginRunInput) -> BeginRunResult:
        """Claim the order's run for the date (once: `standing_order_runs` primary key) and return
        the transfer to start; nothing when the order is not active or the date is not a run date.
        Idempotent: a retry, a replay or another action for the same date gets the same transfer id.
        """
        with UnitOfWork(self._engine) as uow:
            conn = uow.conn
            plan, reason = standing_orders.begin_run(
                conn, UUID(request.standing_order_id), date.fromisoformat(request.scheduled_for)
            )
            uow.commit()
        if plan is None:
            return BeginRunResult(request=None, reason=reason)
        order = plan.order
        return BeginRunResult(
            request=TransferRequest(
                transfer_id=str(plan.transfer_id),
                customer_id=str(order.customer_id),
                source_account_id=str(order.source_account_id),
                destination_account_id=str(plan.destination_account_id),
                amount_minor=order.amount_minor,
                currency=order.currency,
                description=order.description or f"Standing order {request.scheduled_for}",
                sca_exemption=ScaExemption.RECURRING.value,
                payee_id=str(order.payee_id),
                standing_order_id=str(order.id),
                scheduled_for=request.scheduled_for,
            )
        )
