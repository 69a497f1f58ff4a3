"""Idempotency-Key for money-moving POSTs (IETF httpapi draft semantics, Stripe behaviour).

The key is claimed in PostgreSQL *before* any work, with INSERT .. ON CONFLICT on
(principal, key), and the claim row already holds the id of the resource the request will
create (a transfer id, a deposit id). Whatever happens next (a client timeout, an API crash
between starting a workflow and answering), a retry with the same key finds that id and
carries on with it, so the resource is created once.

- first request: claimed, processed, its response (status, body bytes, a few headers) stored;
- same key + same request hash, completed: the stored response is replayed byte for byte
  with `Idempotent-Replayed: true`;
- same key + different request hash: 422 idempotency_key_reused;
- same key while the claim's lease is live: 409 idempotency_key_in_flight;
- a claim whose lease lapsed (the request crashed, or failed with a 5xx and released it):
  re-taken by the next retry, keeping its resource id.

Every response below 500 is stored, business refusals included (a transfer refused for
insufficient funds has run its workflow under that id: replaying the refusal is the truth).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from fastapi import Request, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api.problems import Problem, problem_response
from ledger.ids import uuid7
from ledger.uow import UnitOfWork

# A claim is a lease: longer than any request may take (the transfer route bounds its own
# waits well below this), short enough that a crashed request does not block retries long.
LEASE_S: Final = 30
# Keys are kept at least 24 h (the contract's minimum); a key past this is forgotten.
RETENTION_S: Final = 48 * 3600
MAX_KEY_LENGTH: Final = 255
REPLAYED_HEADER: Final = "Idempotent-Replayed"
# Response headers worth replaying along with the body.
_KEPT_HEADERS: Final = ("content-type", "etag", "location")


def request_hash(method: str, path: str, body: bytes) -> str:
    """sha256 over method, path and the canonical JSON of the body (key order and spacing
    do not matter; anything that is not JSON is hashed as sent)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.upper().encode() + b"\n" + path.encode() + b"\n" + canonical).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    principal: str  # 'customer:<id>' or 'staff:<id>': keys are scoped per principal
    key: str
    method: str
    path: str
    request_hash: str


async def request_of(request: Request, principal: str, key: str) -> IdempotentRequest:
    """The idempotent request of an HTTP request under `key`: scoped to the principal, bound to
    its method, path and (canonical) body. Every idempotent route builds it here."""
    method, path = request.method, request.url.path
    body = await request.body()
    return IdempotentRequest(
        principal=principal, key=key, method=method, path=path, request_hash=request_hash(method, path, body)
    )


@dataclass(frozen=True)
class Claimed:
    resource_id: UUID
    retaken: bool  # a previous attempt with this key ran (at least partly) before


@dataclass(frozen=True)
class Stored:
    status: int
    headers: dict[str, str]
    body: bytes


def _stored_response(stored: Stored) -> Response:
    headers = dict(stored.headers)
    headers[REPLAYED_HEADER] = "true"
    return Response(content=stored.body, status_code=stored.status, headers=headers)


def claim(engine: Engine, req: IdempotentRequest) -> Claimed | Stored:
    """Take the key, or say what the earlier request with it says (one unit of work of its
    own, committed before any work: the claim must outlive whatever the request does next).

    Raises:
        Problem: 422 idempotency_key_reused, 409 idempotency_key_in_flight.
    """
    with UnitOfWork(engine) as uow:
        outcome = _claim(uow, req)
        uow.commit()
    return outcome


def _claim(uow: UnitOfWork, req: IdempotentRequest) -> Claimed | Stored:
    params: dict[str, Any] = {
        "p": req.principal,
        "k": req.key,
        "m": req.method,
        "path": req.path,
        "h": req.request_hash,
        "rid": uuid7(),
        "lease": LEASE_S,
        "keep": RETENTION_S,
    }
    inserted = uow.query(
        """
        INSERT INTO idempotency_keys (principal, key, method, path, request_hash, resource_id, state,
                                      locked_until, created_at, expires_at)
        VALUES (%(p)s, %(k)s, %(m)s, %(path)s, %(h)s, %(rid)s, 'processing',
                now() + make_interval(secs => %(lease)s), now(), now() + make_interval(secs => %(keep)s))
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING resource_id
        """,
        params,
    ).fetchone()
    if inserted is not None:
        return Claimed(resource_id=inserted.resource_id, retaken=False)

    row = uow.query(
        """
        SELECT request_hash, resource_id, state, response_status, response_headers, response_body,
               locked_until > now() AS leased, expires_at <= now() AS expired
          FROM idempotency_keys WHERE principal = %(p)s AND key = %(k)s FOR UPDATE
        """,
        params,
    ).fetchone()
    assert row is not None  # the INSERT above found it
    if row.expired:
        # Past retention the key means nothing any more: start afresh as a new request.
        uow.execute(
            """
            UPDATE idempotency_keys
               SET method = %(m)s, path = %(path)s, request_hash = %(h)s, resource_id = %(rid)s,
                   state = 'processing', locked_until = now() + make_interval(secs => %(lease)s),
                   response_status = NULL, response_headers = NULL, response_body = NULL, created_at = now(),
                   completed_at = NULL, expires_at = now() + make_interval(secs => %(keep)s)
             WHERE principal = %(p)s AND key = %(k)s
            """,
            params,
        )
        return Claimed(resource_id=params["rid"], retaken=False)
    if row.request_hash != req.request_hash:
        raise Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused",
            "This Idempotency-Key was already used with a different request.",
        )
    if row.state == "completed":
        return Stored(int(row.response_status), dict(row.response_headers or {}), bytes(row.response_body))
    if row.leased:
        raise Problem(
            409,
            "idempotency_key_in_flight",
            "Request in progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
    uow.execute(
        "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => %(lease)s) "
        "WHERE principal = %(p)s AND key = %(k)s",
        params,
    )
    return Claimed(resource_id=row.resource_id, retaken=True)


def complete(engine: Engine, req: IdempotentRequest, response: Response) -> Stored | None:
    """Store the response; if another attempt stored one first (it re-took a lapsed lease),
    return that one, which is what every later replay will show."""
    headers = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
    with UnitOfWork(engine) as uow:
        updated = uow.execute(
            """
            UPDATE idempotency_keys
               SET state = 'completed', response_status = %(status)s,
                   response_headers = CAST(%(headers)s AS jsonb), response_body = %(body)s,
                   completed_at = now(), locked_until = now()
             WHERE principal = %(p)s AND key = %(k)s AND state = 'processing'
            """,
            {
                "status": response.status_code,
                "headers": json.dumps(headers),
                "body": bytes(response.body),
                "p": req.principal,
                "k": req.key,
            },
        ).rowcount
        row = (
            None
            if updated
            else uow.query(
                "SELECT response_status, response_headers, response_body FROM idempotency_keys "
                "WHERE principal = %(p)s AND key = %(k)s AND state = 'completed'",
                {"p": req.principal, "k": req.key},
            ).fetchone()
        )
        uow.commit()
    if row is None:
        return None
    return Stored(int(row.response_status), dict(row.response_headers or {}), bytes(row.response_body))


def release(engine: Engine, req: IdempotentRequest) -> None:
    """Let a retry re-take the key now (the attempt failed on our side), keeping its resource id."""
    with UnitOfWork(engine) as uow:
        uow.execute(
            "UPDATE idempotency_keys SET locked_until = now() "
            "WHERE principal = %(p)s AND key = %(k)s AND state = 'processing'",
            {"p": req.principal, "k": req.key},
        )
        uow.commit()


def purge_expired(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        purged = int(uow.execute("DELETE FROM idempotency_keys WHERE expires_at < now()").rowcount)
        uow.commit()
    return purged


Work = Callable[[UUID], Awaitable[Response]]


async def run(engine: Engine, req: IdempotentRequest, work: Work) -> Response:
    """Claim the key, do `work(resource_id)` once, store and return its response.

    `work` answers refusals by raising `Problem` (stored and replayed like any answer below
    500); anything else it raises releases the key for a retry and propagates.
    """
    outcome = await run_in_threadpool(claim, engine, req)
    if isinstance(outcome, Stored):
        return _stored_response(outcome)
    try:
        response = await work(outcome.resource_id)
    except Problem as problem:
        if problem.status >= 500:
            await run_in_threadpool(release, engine, req)
            raise
        response = problem_response(problem.status, problem.code, problem.title, problem.detail, **problem.extra)
    except BaseException:
        await run_in_threadpool(release, engine, req)
        raise
    if response.status_code >= 500:
        await run_in_threadpool(release, engine, req)
        return response
    earlier = await run_in_threadpool(complete, engine, req, response)
    return response if earlier is None else _stored_response(earlier)
