"""Payload encryption without a server: the codec, the keyring, the key file, the converter."""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import threading
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from contracts.transfer import TransferRequest
from security.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, PayloadDecryptionError
from security.converter import data_converter, data_converter_for
from security.keys import ENV_VAR, KeyringError, ensure_key_file, key_file_path, load_keyring, parse_keyring
from workflows.health import HealthCheckWorkflow
from workflows.transfer import TransferWorkflow

K1 = secrets.token_hex(32)
K2 = secrets.token_hex(32)
HISTORIES = Path(__file__).resolve().parent.parent / "workflows" / "histories"


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


@dataclasses.dataclass
class HomeOnly:
    home: Path


# -- the codec ---------------------------------------------------------------------------------


async def test_round_trip_hides_data_and_original_metadata() -> None:
    codec = EncryptionCodec(parse_keyring(f"k1:{K1}"))
    original = Payload(
        metadata={"encoding": b"json/plain", "messageType": b"TransferRequest"}, data=b'{"code":"042917"}'
    )
    [sealed] = await codec.encode([original])
    assert dict(sealed.metadata) == {"encoding": ENCODING, KEY_ID_METADATA: b"k1"}
    assert b"042917" not in sealed.SerializeToString()
    assert b"TransferRequest" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]


async def test_nonce_is_random_per_payload() -> None:
    codec = EncryptionCodec(parse_keyring(f"k1:{K1}"))
    a, b = await codec.encode([plain("same"), plain("same")])
    assert a.data[:12] != b.data[:12] and a.data != b.data


async def test_rotation_decodes_old_keys_and_encodes_with_the_active_one() -> None:
    old = EncryptionCodec(parse_keyring(f"k1:{K1}"))
    rotated = EncryptionCodec(parse_keyring(f"k2:{K2},k1:{K1}"))
    [by_old] = await old.encode([plain("before rotation")])
    [by_new] = await rotated.encode([plain("after rotation")])
    assert by_new.metadata[KEY_ID_METADATA] == b"k2"
    assert await rotated.decode([by_old, by_new]) == [plain("before rotation"), plain("after rotation")]
    with pytest.raises(PayloadDecryptionError, match="no payload key"):
        await old.decode([by_new])


async def test_unencrypted_payloads_pass_through() -> None:
    codec = EncryptionCodec(parse_keyring(f"k1:{K1}"))
    payloads = [plain("old history"), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec.decode(payloads) == payloads


@pytest.mark.parametrize("tamper", ["flip_bit", "truncate", "relabel_key"])
async def test_tampering_is_detected(tamper: str) -> None:
    codec = EncryptionCodec(parse_keyring(f"k1:{K1},k2:{K2}"))
    [sealed] = await codec.encode([plain("amount 738191")])
    if tamper == "flip_bit":
        sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    elif tamper == "truncate":
        sealed.data = sealed.data[:20]
    else:
        # The same ciphertext claimed to be under the other key: the key id is authenticated data.
        sealed.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PayloadDecryptionError):
        await codec.decode([sealed])


# -- the keyring ---------------------------------------------------------------------------------


def test_first_key_is_active() -> None:
    ring = parse_keyring(f" k2:{K2} ,\n# old one\nk1:{K1}")
    assert ring.active_id == "k2" and ring.ids == ("k2", "k1")
    assert ring.active_key == bytes.fromhex(K2)


@pytest.mark.parametrize(
    "spec",
    ["", "k1", f"k1:{K1[:-2]}", "k1:zz" + K1[2:], f"bad id:{K1}", f"k1:{K1},k1:{K2}", f"{'x' * 65}:{K1}"],
)
def test_malformed_keys_are_refused_without_echoing_them(spec: str) -> None:
    with pytest.raises(KeyringError) as refused:
        parse_keyring(spec)
    assert K1 not in str(refused.value) and K1[:16] not in str(refused.value)


def test_keyring_repr_shows_no_key() -> None:
    ring = parse_keyring(f"k1:{K1}")
    assert K1 not in repr(ring) and repr(bytes.fromhex(K1)) not in repr(ring)


def test_key_file_is_created_private_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    settings = HomeOnly(tmp_path / "home")
    first = load_keyring(settings)
    path = key_file_path(settings)
    assert path == (tmp_path / "home" / "secrets" / "payload.keys")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_keyring(settings).active_key == first.active_key
    assert [p.name for p in path.parent.iterdir()] == ["payload.keys"]  # no temporary file left


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "payload.keys"
    barrier = threading.Barrier(8)
    seen: list[bytes] = []

    def start() -> None:
        barrier.wait()
        ensure_key_file(path)
        seen.append(parse_keyring(path.read_text()).active_key)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert sorted(os.listdir(path.parent)) == ["payload.keys"]


def test_configured_keys_win_over_the_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, f"prod-7:{K1}")
    ring = load_keyring(HomeOnly(tmp_path))
    assert ring.active_id == "prod-7"
    assert not (tmp_path / "secrets").exists()


# -- the converter -------------------------------------------------------------------------------


async def test_converter_encrypts_values_and_failure_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, f"k1:{K1}")
    converter = data_converter(HomeOnly(tmp_path))
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    request = TransferRequest("t-1", "c-1", "acct-src-5f2a", "acct-dst-9b1c", 738_191, "USD", "rent")
    [payload] = await converter.encode([request])
    raw = payload.SerializeToString()
    for secret in (b"738191", b"acct-src-5f2a", b"acct-dst-9b1c", b"rent"):
        assert secret not in raw
    assert await converter.decode([payload], [TransferRequest]) == [request]

    failure = Failure()
    await converter.encode_failure(ApplicationError("insufficient funds in account acct-src-5f2a"), failure)
    assert b"acct-src-5f2a" not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    assert "acct-src-5f2a" in str(await converter.decode_failure(failure))


async def test_recorded_plaintext_histories_still_replay_with_encryption_on() -> None:
    """Histories written before encryption (plain payloads) replay through the encrypting converter."""
    # The histories recorded before the local-db-steps patch are also the plaintext ones.
    paths = sorted((HISTORIES / "before-local-steps").glob("*.json"))
    assert paths, "no plaintext histories in tests/workflows/histories/before-local-steps"
    replayer = Replayer(
        workflows=[TransferWorkflow, HealthCheckWorkflow], data_converter=data_converter_for(parse_keyring(f"k1:{K1}"))
    )
    for path in paths:
        await replayer.replay_workflow(WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text()))
