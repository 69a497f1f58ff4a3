"""AES-256-GCM encryption of Temporal payloads (a `PayloadCodec`).

What the Temporal server stores for an encrypted payload:
  metadata: {"encoding": "binary/encrypted", "encryption-key-id": "<key id>"}
  data:     12-byte random nonce || AES-GCM(serialised original Payload) || 16-byte tag

The whole original payload is encrypted, its metadata included, so not even the Python type
or the original encoding shows. The key id and the format version are bound in as associated
data: moving a ciphertext under another key id's label fails authentication instead of
decrypting garbage. A random 96-bit nonce per payload keeps well inside GCM's limits for one
key (NIST SP 800-38D: 2^32 messages with random nonces); rotate keys long before that.

Decoding a payload that is not `binary/encrypted` returns it unchanged: histories written
before encryption was turned on stay readable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from security.keys import Keyring

ENCODING: Final = b"binary/encrypted"
KEY_ID_METADATA: Final = "encryption-key-id"
NONCE_BYTES: Final = 12
_AAD_PREFIX: Final = b"ledgerflow/temporal-payload/v1:"


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key id, or it was altered."""


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        # One AESGCM object per key: building it is the costly part, using it is thread-safe.
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.items()}

    @property
    def active_key_id(self) -> str:
        return self._keyring.active_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keyring.active_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), _aad(key_id))
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """Raises: PayloadDecryptionError (unknown key id, tampered or truncated data)."""
        if not is_encrypted(payload):
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(f"no payload key with id {key_id[:64]!r} in the keyring")
        if len(payload.data) < NONCE_BYTES + 16:
            raise PayloadDecryptionError("encrypted payload is truncated")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], _aad(key_id))
        except InvalidTag:
            raise PayloadDecryptionError(f"encrypted payload fails authentication under key {key_id!r}") from None
        return Payload.FromString(plain)


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode()
