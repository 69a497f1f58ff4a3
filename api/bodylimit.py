"""Request body size limit: 413 `payload_too_large` before a large body is read or parsed.

Pure ASGI, in front of everything that reads a body, so nothing downstream (JSON parsing, form
parsing, the idempotency hash) ever buffers more than the limit. A declared Content-Length over the limit is refused
at once, without reading the body (the server itself holds a body to its declared length).
A body without one (chunked) is read here first, at most limit + one chunk, and replayed to
the app if it fits: raising from inside the app's `receive` would not work, because the
layers in between (BaseHTTPMiddleware's task group, FastAPI's body reader) turn any
exception there into a 400 or a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
TOO_LARGE_DETAIL: Final = "The request body is too large."


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES, prefixes: Mapping[str, int] | None = None
    ) -> None:
        """`prefixes`: path prefix -> its own limit (the longest matching prefix wins)."""
        self.app = app
        self.max_bytes = max_bytes
        self.prefixes = sorted((prefixes or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.prefixes if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is None:
            buffered = await _read_at_most(receive, limit)
            if buffered is None:
                await self._too_large(limit, scope, receive, send)
                return
            await self.app(scope, _replay(buffered, receive), send)
            return
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(limit, scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, "payload_too_large", "Payload too large", TOO_LARGE_DETAIL, max_bytes=limit)
        await response(scope, receive, send)


async def _read_at_most(receive: Receive, limit: int) -> list[Message] | None:
    """The request's messages up to the end of its body, or None once they exceed `limit` bytes."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client went away: let the app see it
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
