"""Unit tests of security.sealed: round trip, purpose binding, rotation, tampering."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from security.keys import parse_keyring
from security.sealed import Sealer, UnsealError, is_sealed, load_sealer


def _ring(*ids: str) -> Sealer:
    return Sealer(parse_keyring(",".join(f"{i}:{secrets.token_hex(32)}" for i in ids)))


def test_round_trip_and_no_plaintext() -> None:
    sealer = _ring("k1")
    value = sealer.seal_text("otp-code", "493021")
    assert is_sealed(value)
    assert "493021" not in value
    assert sealer.open_text("otp-code", value) == "493021"
    # A fresh nonce each time: the same secret never seals to the same string.
    assert sealer.seal_text("otp-code", "493021") != value


def test_other_purpose_is_refused() -> None:
    sealer = _ring("k1")
    value = sealer.seal_text("otp-code", "493021")
    with pytest.raises(UnsealError):
        sealer.open_text("totp-secret", value)


def test_rotation_opens_old_values_and_seals_with_the_new_key() -> None:
    k1 = secrets.token_hex(32)
    old = Sealer(parse_keyring(f"k1:{k1}"))
    value = old.seal_text("p", "s")
    new = Sealer(parse_keyring(f"k2:{secrets.token_hex(32)},k1:{k1}"))
    assert new.open_text("p", value) == "s"
    assert new.seal_text("p", "s").startswith("lfs1.k2.")
    with pytest.raises(UnsealError, match="no seal key"):
        _ring("k3").open_text("p", value)


@pytest.mark.parametrize("mangle", [lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1], lambda v: v[:20]])
def test_altered_or_truncated_values_are_refused(mangle: object) -> None:
    sealer = _ring("k1")
    value = sealer.seal_text("p", "secret")
    with pytest.raises(UnsealError):
        sealer.open_text("p", mangle(value))  # type: ignore[operator]


def test_key_id_swap_is_refused() -> None:
    key = secrets.token_hex(32)
    sealer = Sealer(parse_keyring(f"a:{key},b:{key}"))
    value = sealer.seal_text("p", "secret")
    with pytest.raises(UnsealError):
        sealer.open_text("p", value.replace("lfs1.a.", "lfs1.b.", 1))


def test_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    class Home:
        home = tmp_path

    first = load_sealer(Home())
    path = tmp_path / "secrets" / "seal.keys"
    assert path.stat().st_mode & 0o077 == 0
    assert load_sealer(Home()).open_text("p", first.seal_text("p", "x")) == "x"
