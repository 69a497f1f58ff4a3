"""The payload encryption keyring: AES-256 keys by id, the first one active.

Where the keys come from, first match wins:
1. `LEDGERFLOW_PAYLOAD_KEYS` (or a `payload_keys` field on Settings, once it has one), e.g.
   "k2:<64 hex>,k1:<64 hex>": production sets it from a secret store;
2. otherwise `<home>/secrets/payload.keys`, generated on first start (one line `id:hex`).
Never from the repository.

Rotation: put a new key first (it encrypts from then on) and keep the old ones after it for as
long as histories encrypted with them may be read (workflow retention + replay tests). A key id
travels in clear in each payload's metadata, so ids must be meaningless labels, never secrets.

Errors name the offending key id or line number, never key material.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

log = logging.getLogger("ledgerflow.security")

ENV_VAR: Final = "LEDGERFLOW_PAYLOAD_KEYS"
KEY_FILE_NAME: Final = "payload.keys"
KEY_BYTES: Final = 32  # AES-256
_KEY_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(ValueError):
    """The configured keys are unusable (the message never contains key material)."""


class HasHome(Protocol):
    """What the keyring needs from config.settings.Settings (kept structural: no import cycle)."""

    @property
    def home(self) -> Path: ...


@dataclass(frozen=True)
class Keyring:
    active_id: str
    # repr=False: a keyring printed in a log or a traceback must not show the keys.
    _keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active_id not in self._keys:
            raise KeyringError(f"active key {self.active_id!r} is not in the keyring")
        object.__setattr__(self, "_keys", MappingProxyType(dict(self._keys)))

    @property
    def active_key(self) -> bytes:
        return self._keys[self.active_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    def items(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._keys.items())


def parse_keyring(spec: str) -> Keyring:
    """Entries "id:hex" separated by commas or newlines; '#' starts a comment line.

    Raises:
        KeyringError: empty, malformed entry, bad id, key not 32 bytes of hex, duplicate id.
    """
    keys: dict[str, bytes] = {}
    entries = [e.strip() for line in spec.splitlines() if not line.strip().startswith("#") for e in line.split(",")]
    for n, entry in enumerate((e for e in entries if e), start=1):
        key_id, sep, hex_key = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise KeyringError(f"payload key entry {n} is not 'id:hex' with an id of [A-Za-z0-9._-]{{1,64}}")
        try:
            key = bytes.fromhex(hex_key.strip())
        except ValueError:
            raise KeyringError(f"payload key {key_id!r} is not hexadecimal") from None
        if len(key) != KEY_BYTES:
            raise KeyringError(f"payload key {key_id!r} must be {KEY_BYTES} bytes ({KEY_BYTES * 2} hex digits)")
        if key_id in keys:
            raise KeyringError(f"payload key id {key_id!r} appears twice")
        keys[key_id] = key
    if not keys:
        raise KeyringError("no payload keys configured")
    return Keyring(active_id=next(iter(keys)), _keys=keys)


def configured_spec(settings: object, *, field_name: str = "payload_keys", env_var: str = ENV_VAR) -> str:
    """The keys from configuration, or "" when none are configured."""
    value = getattr(settings, field_name, None)
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()  # pydantic SecretStr
    if isinstance(value, str) and value.strip():
        return value
    return os.environ.get(env_var, "")


def key_file_path(settings: HasHome, file_name: str = KEY_FILE_NAME) -> Path:
    return settings.home.resolve() / "secrets" / file_name


def load_keyring(
    settings: HasHome, *, field_name: str = "payload_keys", env_var: str = ENV_VAR, file_name: str = KEY_FILE_NAME
) -> Keyring:
    """The keyring from configuration, else from the key file (created on first use).

    The same rules serve every keyring (Temporal payloads, secrets sealed at rest): each has
    its own setting, variable and file, so a leak of one never opens the other.

    Raises:
        KeyringError: the configured keys or the key file are malformed.
    """
    spec = configured_spec(settings, field_name=field_name, env_var=env_var)
    if spec:
        return parse_keyring(spec)
    path = key_file_path(settings, file_name)
    ensure_key_file(path)
    return parse_keyring(path.read_text())


def ensure_key_file(path: Path) -> None:
    """Create `path` with one fresh key unless it exists; safe when processes race to create it.

    The key is written to a private temporary file (created 0600, so it is never readable by
    anyone else, not even for an instant) and hard-linked into place: a concurrent reader sees
    no file or the whole file, and exactly one process's key wins.
    """
    if path.exists():
        _warn_if_exposed(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(
                "# Ledgerflow payload encryption keys, id:hex, first = active. Generated; keep secret.\n"
                f"local-{secrets.token_hex(4)}:{secrets.token_hex(KEY_BYTES)}\n"
            )
            out.flush()
            os.fsync(out.fileno())
        # If another process won the race, its key is the one everybody uses.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _warn_if_exposed(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("key file %s is readable by group or others (mode %o): chmod 600 it", path, mode)
