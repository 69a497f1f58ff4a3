"""The one Temporal `DataConverter` of Ledgerflow: default JSON conversion, then encryption.

Every client and worker that touches transfer workflows must use it (a worker without it
cannot read what an encrypting client wrote). The failure converter moves failure messages
and stack traces into an encoded attribute, so an error such as "insufficient funds on
account <id> for 1250 USD" is encrypted like any other payload instead of sitting in the
server's store in clear.

What stays readable on the server by design: workflow ids (`transfer-<transfer id>`), task
queues, activity and signal names, timer summaries, and search attributes (the server must
index them), so nothing secret may ever go into those.
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from security.codec import EncryptionCodec
from security.keys import HasHome, Keyring, load_keyring


def data_converter_for(keyring: Keyring) -> DataConverter:
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter(settings: HasHome) -> DataConverter:
    """The encrypting converter, keys from `settings` (see security.keys).

    Raises:
        KeyringError: the configured keys or the key file are malformed.
    """
    return data_converter_for(load_keyring(settings))


def with_data_converter(client: Client, converter: DataConverter) -> Client:
    """The same connection and namespace as `client`, with `converter` (no new connection)."""
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)


def with_encryption(client: Client, settings: HasHome) -> Client:
    """`client` switched to the encrypting converter; what worker.build should wrap its client in,
    so every worker encrypts whoever built the client."""
    if isinstance(client.data_converter.payload_codec, EncryptionCodec):
        return client
    return with_data_converter(client, data_converter(settings))
