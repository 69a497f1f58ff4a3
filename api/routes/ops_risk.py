"""Fraud rules as admins configure them (/ops/v1/risk/rules): anyone on staff reads, admins
change a rule's `enabled`, `action` and `params` (audited, before and after). The risk
consumer reads the rules for every assessment, so a change applies to the next transfer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from api import schemas
from api.contract import declare
from api.deps import Admin, AnyStaff, EngineDep, client_ip
from api.problems import Problem, not_found
from api.schemas_risk import RiskRule, RiskRuleIn
from ledger import audit
from ledger.uow import UnitOfWork
from risk import assess as risk_assess
from risk.rules import InvalidRule, UnknownRule

router = APIRouter(tags=["ops: risk"])

RuleName = Annotated[str, Path(pattern="^[a-z_]{1,40}$", examples=["velocity"])]


def _view(stored: risk_assess.StoredRule) -> RiskRule:
    r = stored.rule
    return RiskRule(
        name=r.name,
        enabled=r.enabled,
        action=r.action,
        params=dict(r.params),
        version=stored.version,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
    )


@router.get("/risk/rules", response_model=schemas.Page[RiskRule], summary="The fraud rules and their settings")
def list_rules(staff: AnyStaff, engine: EngineDep) -> schemas.Page[RiskRule]:
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        rules = risk_assess.list_rules(conn)
        uow.commit()
    # Four built-in rules: one page.
    return schemas.Page[RiskRule](items=[_view(r) for r in rules], next_cursor=None)


@router.put("/risk/rules/{name}", response_model=RiskRule, summary="Change a fraud rule (admin, audited)")
@declare("invalid_rule", "rule_not_found")
def put_rule(name: RuleName, body: RiskRuleIn, admin: Admin, engine: EngineDep, request: Request) -> RiskRule:
    try:
        with UnitOfWork(engine) as uow:
            sa_conn = uow.sql
            conn = uow.conn
            before = next((r for r in risk_assess.list_rules(conn) if r.rule.name == name), None)
            if before is None:
                raise UnknownRule(name)
            after = risk_assess.put_rule(
                conn, name, enabled=body.enabled, action=body.action, params=body.params, updated_by=admin.email
            )
            view = _view(after)
            audit.record(
                sa_conn,
                actor=admin.actor,
                action="risk.rule_set",
                target_type="risk_rule",
                target_id=name,
                before=_view(before).model_dump(mode="json"),
                after=view.model_dump(mode="json"),
                ip=client_ip(request),
            )
            uow.commit()
    except UnknownRule as err:
        raise not_found("risk rule", "rule_not_found") from err
    except InvalidRule as err:
        raise Problem(422, "invalid_rule", "Invalid rule", str(err)) from err
    return view
