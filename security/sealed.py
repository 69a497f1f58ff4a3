"""Secrets at rest in our own storage: AES-256-GCM with a key id, bound to a purpose.

A sealed value is one ASCII string, safe in a text column, a JSON field or a Kafka message:

    lfs1.<key id>.<base64url(nonce || ciphertext || tag)>

The purpose (for example "otp-code" or "totp-secret") and the key id are the associated data,
so a value sealed for one purpose cannot be replayed as another, and a key id swapped in the
envelope fails authentication. Keys come from `LEDGERFLOW_SEAL_KEYS` ("kid:hex64,..." first =
active) or `<home>/secrets/seal.keys`, generated on first start: the same keyring rules as the
Temporal payload keys (security/keys.py), and a keyring of its own, so the Temporal UI's codec
endpoint can never open these.

Rotation: put a new key first; values sealed with the old ones open for as long as the old key
stays in the ring.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from security.keys import HasHome, Keyring, load_keyring

ENV_VAR: Final = "LEDGERFLOW_SEAL_KEYS"
KEY_FILE_NAME: Final = "seal.keys"
PREFIX: Final = "lfs1"
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16


class UnsealError(ValueError):
    """A sealed value cannot be opened: malformed, unknown key id, other purpose, or altered."""


class Sealer:
    """Seals and opens small secrets; thread-safe, cheap to call (one AESGCM per key)."""

    def __init__(self, keyring: Keyring) -> None:
        self._active_id = keyring.active_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.items()}

    @property
    def active_key_id(self) -> str:
        return self._active_id

    def seal(self, purpose: str, plaintext: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active_id].encrypt(nonce, plaintext, _aad(purpose, self._active_id))
        return f"{PREFIX}.{self._active_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def seal_text(self, purpose: str, plaintext: str) -> str:
        return self.seal(purpose, plaintext.encode())

    def open(self, purpose: str, value: str) -> bytes:
        """Raises: UnsealError (the message names the key id at most, never material)."""
        prefix, _, rest = value.partition(".")
        key_id, _, body = rest.partition(".")
        if prefix != PREFIX or not key_id or not body:
            raise UnsealError("not a sealed value")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnsealError(f"no seal key with id {key_id[:64]!r} in the keyring")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError):
            raise UnsealError("sealed value is not base64url") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise UnsealError("sealed value is truncated")
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(purpose, key_id))
        except InvalidTag:
            raise UnsealError(f"sealed value fails authentication under key {key_id!r}") from None

    def open_text(self, purpose: str, value: str) -> str:
        return self.open(purpose, value).decode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ".")


def load_sealer(settings: HasHome) -> Sealer:
    """The sealer from `seal_keys` / LEDGERFLOW_SEAL_KEYS, else the key file (made on first use).

    Raises:
        security.keys.KeyringError: the configured keys or the key file are malformed.
    """
    return Sealer(load_keyring(settings, field_name="seal_keys", env_var=ENV_VAR, file_name=KEY_FILE_NAME))


def _aad(purpose: str, key_id: str) -> bytes:
    return f"ledgerflow/sealed/v1:{purpose}:{key_id}".encode()
