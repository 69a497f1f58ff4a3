"""The one way to connect to Temporal: with Ledgerflow's encrypting data converter.

A client without it could neither read what the worker writes nor be read by it, so every
process (worker, API, tests, benchmarks) connects through here.
"""

from __future__ import annotations

from temporalio.client import Client

from config.settings import Settings
from security.converter import data_converter


async def connect(settings: Settings, address: str | None = None) -> Client:
    return await Client.connect(
        address or settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
