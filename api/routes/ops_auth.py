"""Staff login and logout (/ops/v1/auth)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api import login as login_mod
from api import schemas, security
from api.contract import declare
from api.deps import EngineDep, EnrollingStaff, RuntimeDep, reject_foreign_token, staff_scheme

router = APIRouter(tags=["ops: auth"])


@router.post("/auth/token", response_model=schemas.Token, dependencies=[Depends(reject_foreign_token)])
@declare("invalid_credentials", "mfa_required", "too_many_attempts")
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    runtime: RuntimeDep,
    totp: Annotated[str | None, Form(max_length=64, description="TOTP code or recovery code (staff: required)")] = None,
) -> schemas.Token:
    return login_mod.login(
        runtime.engine, request, security.STAFF, form.username, form.password, totp=totp, sealer=runtime.sealer
    )


@router.post("/auth/logout", status_code=204, response_class=Response)
def logout(staff: EnrollingStaff, engine: EngineDep, bearer: Annotated[str | None, Depends(staff_scheme)]) -> Response:
    login_mod.logout(engine, bearer)
    return Response(status_code=204)
