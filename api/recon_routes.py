"""What the staff routes that act on reconciliation and reversals share: recon and ledger
refusals as problems, and an optional Idempotency-Key (a retry with the same key replays the
first answer; without one, every request is new)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated
from uuid import UUID

from fastapi import Header, Request, Response

from api import errors, idempotency
from api.contract import translator
from api.deps import StaffPrincipal
from api.errors import from_ledger
from api.problems import Problem
from api.runtime import Runtime
from ledger.errors import LedgerError
from ledger.ids import uuid7
from recon.errors import ReconError


@translator
def problem_of(err: ReconError) -> Problem:
    status = errors.status_for(err.code)
    return Problem(status, err.code, errors.title_for(status), str(err), **err.extra())


@translator
@contextmanager
def recon_errors() -> Iterator[None]:
    """Recon and ledger refusals raised in the block as problems."""
    try:
        yield
    except ReconError as err:
        raise problem_of(err) from err
    except LedgerError as err:
        raise from_ledger(err) from err


OptionalIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=idempotency.MAX_KEY_LENGTH,
        description="Optional: a retry with the same key replays the first answer.",
    ),
]


async def maybe_idempotent(
    runtime: Runtime,
    request: Request,
    staff: StaffPrincipal,
    key: str | None,
    work: Callable[[UUID], Awaitable[Response]],
) -> Response:
    """`work(new id)`, under the Idempotency-Key when the client sent one."""
    if key is None or not key.strip():
        return await work(uuid7())
    req = await idempotency.request_of(request, staff.scope, key)
    return await idempotency.run(runtime.engine, req, work)
