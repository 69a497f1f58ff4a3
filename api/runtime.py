"""Process-wide handles of the API, built once at start-up: settings, engine, ledger, clients."""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka.admin import AdminClient
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from api.problems import Problem
from api.ratelimit import RateLimits
from config.settings import TEMPORAL_UI_PATH, Settings, get_settings
from fx.rates import TableRateProvider
from ledger.db import make_engine
from ledger.service import Ledger
from security.converter import data_converter
from security.sealed import load_sealer

log = logging.getLogger("ledgerflow.api")


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        # pre_ping: the API idles across database restarts; a dead pooled connection must be
        # replaced on checkout rather than fail the request that drew it.
        self.engine = make_engine(
            self.settings.sqlalchemy_url,
            pool_size=self.settings.db_pool_size,
            pre_ping=True,
            ping_after_idle_s=self.settings.db_ping_after_idle_s,
            application_name="ledgerflow-api",
        )
        self.ledger = Ledger(self.engine)
        self.rates = TableRateProvider(self.engine)
        self.rate_limits = RateLimits(self.engine)
        # Built now, not at (lazy) connect time: a malformed key fails the start, and a
        # reconnect later uses the same keys whatever the environment says by then.
        self.data_converter = data_converter(self.settings)
        # Opens sealed OTP codes for the inbox's owner (otp/delivery.py) and seals TOTP secrets
        # at rest (mfa/store.py); built now for the same reason: a bad seal key fails the start.
        self.sealer = load_sealer(self.settings)
        self._kafka_admin: AdminClient | None = None
        self._temporal: Client | None = None
        self._temporal_lock = asyncio.Lock()

    @property
    def kafka_admin(self) -> AdminClient:
        # Built on first use (/readyz): a librdkafka client starts connecting at once, and
        # nothing else in the API talks to Kafka (the outbox relay publishes).
        if self._kafka_admin is None:
            self._kafka_admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        return self._kafka_admin

    async def temporal_client(self) -> Client | None:
        # Connect lazily and retry on each call: the API must start (and say "not ready")
        # even while Temporal is down.
        if self._temporal is None:
            async with self._temporal_lock:
                if self._temporal is None:
                    try:
                        self._temporal = await asyncio.wait_for(
                            Client.connect(
                                self.settings.temporal_address,
                                namespace=self.settings.temporal_namespace,
                                data_converter=self.data_converter,
                            ),
                            timeout=3,
                        )
                    except Exception as err:
                        log.warning("temporal not reachable yet: %s", type(err).__name__)
        return self._temporal

    async def temporal(self) -> Client:
        """The Temporal client, or 503 temporal_unavailable."""
        client = await self.temporal_client()
        if client is None:
            raise Problem(503, "temporal_unavailable", "Service unavailable", "The workflow engine is not reachable.")
        return client

    @property
    def payload_codec(self) -> PayloadCodec:
        """The codec of the Temporal payloads (the Web UI's codec endpoint uses it)."""
        codec = self.data_converter.payload_codec
        assert codec is not None
        return codec

    def temporal_ui_url(self, workflow_id: str) -> str:
        """The workflow's page in the Temporal Web UI, through the ops portal (staff login, the
        codec same-origin: portal/temporal_ui.py)."""
        s = self.settings
        return (
            f"http://{s.host}:{s.api_port}{TEMPORAL_UI_PATH}/namespaces/{s.temporal_namespace}/workflows/{workflow_id}"
        )

    def close(self) -> None:
        self.engine.dispose()
