"""The Temporal Web UI's remote codec (/ops/v1/temporal-codec/decode and /encode), staff only.

Payloads are encrypted before they reach the Temporal server (security/codec.py), so the Web
UI shows ciphertext unless it can ask us to decode. It POSTs the remote-codec JSON shape
{"payloads": [{"metadata": {k: base64}, "data": base64}]} to `<endpoint>/decode` from the
browser, cross-origin (the UI is on its own port), so:

- CORS admits exactly one origin, the Temporal UI's (settings host + temporal_ui_port), with
  credentials, and the OPTIONS preflight is answered here;
- who may call: a staff bearer token (the UI's "pass access token" setting, or any script),
  or the staff portal's session cookie (the UI's "include cross-origin credentials" setting;
  the cookie's Path /ops covers this route). A cookie alone is accepted only with an Origin
  header of the UI or of the API itself: a cookie is sent by the browser on its own, a
  bearer token is not, so only the cookie needs this defence against cross-site requests.
- anyone else: 401 (a customer token included), audited like every other refusal.

Decoding is reading: like other staff reads it is not written to the audit log; a counter
in /metrics shows the volume.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload

from api import metrics
from api.contract import declare
from api.deps import RuntimeDep, StaffPrincipal, current_staff, reject_foreign_token, staff_scheme
from api.problems import Problem
from api.runtime import Runtime
from portal.web import STAFF as STAFF_PORTAL
from portal.web import store as portal_sessions
from security.codec import PayloadDecryptionError

PREFIX: Final = "/temporal-codec"
# A history's payloads can be large (Temporal's own blob limit is 2 MiB per payload).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
ALLOWED_HEADERS: Final = "Authorization, Content-Type, X-Namespace"

router = APIRouter(prefix=PREFIX, tags=["ops: temporal codec"])


class CodecPayload(BaseModel):
    # Protobuf JSON of temporal.api.common.v1.Payload: bytes fields are base64 strings.
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[CodecPayload] = Field(max_length=10_000)


def cors_headers(request: Request, runtime: Runtime) -> dict[str, str]:
    """CORS answer headers: the UI's origin and credentials, or nothing for any other origin."""
    origin = request.headers.get("origin")
    if origin is not None and origin == runtime.temporal_ui_origin:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
    return {"Vary": "Origin"}


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def codec_staff(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(staff_scheme)]
) -> StaffPrincipal:
    """The staff member behind a bearer token or a staff portal session cookie.

    Raises:
        Problem: 401 unauthorized, 403 origin_not_allowed (cookie from another origin); all with
        the CORS headers, so the UI can show the refusal instead of a network error.
    """
    cors = cors_headers(request, runtime)
    try:
        if not token:
            session = portal_sessions(request).get(request.cookies.get(STAFF_PORTAL.cookie), "staff")
            if session is not None:
                origin = request.headers.get("origin")
                if origin not in (runtime.temporal_ui_origin, _own_origin(request)):
                    raise Problem(
                        403,
                        "origin_not_allowed",
                        "Forbidden",
                        "A portal session is accepted here only from the Temporal Web UI.",
                    )
                token = session.api_token
        return current_staff(request, runtime, token)
    except Problem as problem:
        problem.headers.update(cors)
        raise


CodecStaff = Annotated[StaffPrincipal, Depends(codec_staff)]


def _to_payload(item: CodecPayload) -> Payload:
    try:
        return Payload(
            metadata={k: base64.b64decode(v, validate=True) for k, v in item.metadata.items()},
            data=base64.b64decode(item.data, validate=True),
        )
    except (binascii.Error, ValueError) as err:
        raise Problem(422, "invalid_payload", "Invalid payload", "Payload fields must be base64.") from err


def _to_json(payload: Payload) -> dict[str, object]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def _run(request: Request, runtime: Runtime, body: CodecPayloads, operation: str) -> JSONResponse:
    cors = cors_headers(request, runtime)
    try:
        payloads = [_to_payload(item) for item in body.payloads]
        codec = runtime.payload_codec
        result = await (codec.decode(payloads) if operation == "decode" else codec.encode(payloads))
    except Problem as problem:
        problem.headers.update(cors)
        raise
    except PayloadDecryptionError as err:
        # Which key or payload failed is for the server log, not for the browser.
        raise Problem(
            422, "undecodable_payload", "Undecodable payload", "A payload cannot be decrypted.", headers=cors
        ) from err
    metrics.CODEC_PAYLOADS.labels(operation).inc(len(payloads))
    return JSONResponse({"payloads": [_to_json(p) for p in result]}, headers=cors | {"Cache-Control": "no-store"})


@router.post("/decode", response_model=CodecPayloads, summary="Decrypt payloads for the Temporal Web UI")
@declare("unauthorized", "origin_not_allowed", "invalid_payload", "undecodable_payload")
async def decode(request: Request, staff: CodecStaff, runtime: RuntimeDep, body: CodecPayloads) -> JSONResponse:
    return await _run(request, runtime, body, "decode")


@router.post("/encode", response_model=CodecPayloads, summary="Encrypt payloads for the Temporal Web UI")
@declare("unauthorized", "origin_not_allowed", "invalid_payload", "undecodable_payload")
async def encode(request: Request, staff: CodecStaff, runtime: RuntimeDep, body: CodecPayloads) -> JSONResponse:
    return await _run(request, runtime, body, "encode")


_PREFLIGHT: Final[dict[str, object]] = {
    "methods": ["OPTIONS"],
    "status_code": 204,
    "response_class": Response,
    "dependencies": [Depends(reject_foreign_token)],
    "summary": "CORS preflight for the Temporal Web UI",
}


@router.api_route("/decode", **_PREFLIGHT)  # type: ignore[arg-type]
@router.api_route("/encode", **_PREFLIGHT)  # type: ignore[arg-type]
@declare("cors_origin_not_allowed")
def preflight(request: Request, runtime: RuntimeDep) -> Response:
    """Browsers send no credentials on a preflight: it is answered for the UI's origin only.

    Raises:
        Problem: 403 cors_origin_not_allowed (another origin).
    """
    origin = request.headers.get("origin")
    if origin is None:
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    if origin != runtime.temporal_ui_origin:
        raise Problem(403, "cors_origin_not_allowed", "Forbidden", "This origin may not call the codec endpoint.")
    return Response(
        status_code=204,
        headers=cors_headers(request, runtime)
        | {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )
