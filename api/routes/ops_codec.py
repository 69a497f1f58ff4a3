"""The Temporal payload codec (/ops/v1/temporal-codec/decode and /encode), staff only.

Payloads are encrypted before they reach the Temporal server (security/codec.py), so the Web
UI shows ciphertext unless it can ask us to decode. Staff reach the UI through the ops portal
(portal/temporal_ui.py): the UI's codec there is the same-origin /ops/temporal-codec, which calls
this endpoint with the signed-in staff member's bearer token. Scripts call it with a staff token
too. Anyone else (no token, a customer token): 401, audited like every other refusal. A bearer
token is never sent by a browser on its own, so no cross-origin (CORS) access is granted here.

Decoding is reading: like other staff reads it is not written to the audit log; a counter
in /metrics shows the volume.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload

from api import metrics
from api.contract import declare
from api.deps import RuntimeDep, StaffPrincipal, current_staff, staff_scheme
from api.problems import Problem
from api.runtime import Runtime
from security.codec import PayloadDecryptionError

PREFIX: Final = "/temporal-codec"
# A history's payloads can be large (Temporal's own blob limit is 2 MiB per payload).
MAX_BODY_BYTES: Final = 4 * 1024 * 1024

router = APIRouter(prefix=PREFIX, tags=["ops: temporal codec"])


class CodecPayload(BaseModel):
    # Protobuf JSON of temporal.api.common.v1.Payload: bytes fields are base64 strings.
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[CodecPayload] = Field(max_length=10_000)


def codec_staff(
    request: Request, runtime: RuntimeDep, token: Annotated[str | None, Depends(staff_scheme)]
) -> StaffPrincipal:
    """The staff member behind the bearer token.

    Raises:
        Problem: 401 unauthorized (no token, or not a staff token).
    """
    return current_staff(request, runtime, token)


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


async def _run(runtime: Runtime, body: CodecPayloads, operation: str) -> JSONResponse:
    payloads = [_to_payload(item) for item in body.payloads]
    codec = runtime.payload_codec
    try:
        result = await (codec.decode(payloads) if operation == "decode" else codec.encode(payloads))
    except PayloadDecryptionError as err:
        # Which key or payload failed is for the server log, not for the browser.
        raise Problem(422, "undecodable_payload", "Undecodable payload", "A payload cannot be decrypted.") from err
    metrics.CODEC_PAYLOADS.labels(operation).inc(len(payloads))
    return JSONResponse({"payloads": [_to_json(p) for p in result]}, headers={"Cache-Control": "no-store"})


@router.post("/decode", response_model=CodecPayloads, summary="Decrypt payloads for the Temporal Web UI")
@declare("unauthorized", "invalid_payload", "undecodable_payload", "mfa_enrolment_required")
async def decode(request: Request, staff: CodecStaff, runtime: RuntimeDep, body: CodecPayloads) -> JSONResponse:
    return await _run(runtime, body, "decode")


@router.post("/encode", response_model=CodecPayloads, summary="Encrypt payloads for the Temporal Web UI")
@declare("unauthorized", "invalid_payload", "undecodable_payload", "mfa_enrolment_required")
async def encode(request: Request, staff: CodecStaff, runtime: RuntimeDep, body: CodecPayloads) -> JSONResponse:
    return await _run(runtime, body, "encode")
