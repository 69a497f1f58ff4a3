"""Errors that mean a dependency is down, not that the request or our code is wrong."""

from __future__ import annotations

from typing import Final

import psycopg
import sqlalchemy.exc
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

_TRANSPORT_ERROR: Final = "transport error"
_UNAVAILABLE_RPC: Final = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED)


def unavailable_part(err: BaseException) -> str | None:
    """Which dependency an escaped error says is down ("postgresql", "temporal"), if that is what it was.

    A database restart or a Temporal outage is no bug of ours and no fault of the client's:
    the request can be retried (every money-moving request is idempotent), so it deserves a
    503 that says so rather than a 500.
    """
    if isinstance(err, psycopg.OperationalError | sqlalchemy.exc.OperationalError | sqlalchemy.exc.TimeoutError):
        return "postgresql"
    if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
        return "postgresql"
    if isinstance(err, RPCError) and err.status in _UNAVAILABLE_RPC:
        return "temporal"
    if isinstance(err, RPCError) and err.status == RPCStatusCode.UNKNOWN and err.message == _TRANSPORT_ERROR:
        # The SDK's name for a connection the server dropped mid-call (seen in the chaos run
        # while Temporal restarted): the call may or may not have landed, which a retry with
        # the same Idempotency-Key settles.
        return "temporal"
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return "temporal"
    return None
