"""The portals' CSS and JavaScript, served by the app itself (no CDN, no build step).

Each portal serves the same files under its own prefix (/portal/static/, /ops/static/), so a
page only ever loads from its own path and the CSP's 'self' is all it needs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from fastapi import APIRouter, Response

from portal.web import HERE, SECURITY_HEADERS

STATIC_DIR: Final = HERE / "static"
_NAME: Final = re.compile(r"^[a-z0-9-]+\.(css|js)$")
_TYPES: Final = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}


@lru_cache(maxsize=32)
def _load(name: str) -> bytes | None:
    # Only plain names from the listing: no path can climb out of the static directory.
    if not _NAME.match(name) or name not in {p.name for p in STATIC_DIR.iterdir()}:
        return None
    return (STATIC_DIR / name).read_bytes()


def router(prefix: str) -> APIRouter:
    assets = APIRouter(prefix=prefix, include_in_schema=False)

    @assets.get("/static/{name}")
    def static_file(name: str) -> Response:
        body = _load(name)
        if body is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
        return Response(body, media_type=_TYPES[name.rsplit(".", 1)[1]], headers=headers)

    return assets
