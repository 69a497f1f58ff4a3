"""The relay process: topics, the outbox publisher and the consumers, run until a signal.

`python -m relay` runs everything in one process, one thread each: the publisher and the
consumers (notifier, activity, and risk when LEDGERFLOW_RISK_ENABLED). `--role publisher` or
`--role consumers` runs one half, to scale them apart. Readiness is the log line `relay
ready`, written once the topics exist, the database answers and every thread is running;
SIGTERM or SIGINT stops the threads (the publisher finishes and flushes its current batch)
and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from prometheus_client import start_http_server
from sqlalchemy import Engine

from config.settings import get_settings
from ledger.db import make_engine
from ledger.uow import session
from relay.activity import ActivityProjection
from relay.backoff import Backoff
from relay.consumer import EventConsumer
from relay.failures import DATABASE_DOWN
from relay.notifier import Notifier
from relay.publisher import OutboxRelay
from relay.risk import RiskConsumer
from relay.topics import TopicSetupError, ensure_topics

log = logging.getLogger("relay")

READY_LINE = "relay ready"
METRICS_PORT_ENV = "LEDGERFLOW_RELAY_METRICS_PORT"
# Consumer group ids are "<prefix>.notifier" and "<prefix>.activity".
GROUP_PREFIX_ENV = "LEDGERFLOW_RELAY_GROUP_PREFIX"
ROLES = ("all", "publisher", "consumers")


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def wait_for(what: str, attempt: Callable[[], object], stop: threading.Event) -> bool:
    """Retry `attempt` with backoff until it returns without raising a retryable error, or
    `stop` is set (then False). The launcher starts us after PostgreSQL and Kafka, but a
    relay must also survive being started first (docker compose, a restart of one part)."""
    backoff = Backoff(0.5, 10.0)
    while not stop.is_set():
        try:
            attempt()
            return True
        except (TopicSetupError, *DATABASE_DOWN) as exc:
            delay = backoff.next_delay()
            log.warning("waiting for %s (%s); retrying in %.1fs", what, str(exc).strip()[:300], delay)
            stop.wait(delay)
    return False


def check_database(engine: Engine) -> None:
    """Raises: psycopg.OperationalError when PostgreSQL is unreachable; psycopg.Error when the
    schema is not migrated (no outbox or processed_events table): a bug to report, not wait out."""
    with session(engine) as conn:
        conn.execute("SELECT 1 FROM outbox LIMIT 0")
        conn.execute("SELECT 1 FROM processed_events LIMIT 0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=ROLES, default="all", help="what this process runs (default: all)")
    args = parser.parse_args(argv)
    configure_logging()

    settings = get_settings()
    stop = threading.Event()
    signals_seen = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second %s: exiting without waiting", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: finishing the current batch and stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    port = os.environ.get(METRICS_PORT_ENV)
    if port:
        start_http_server(int(port), addr=settings.host)
        log.info("metrics on http://%s:%s/metrics", settings.host, port)

    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        pre_ping=True,
        ping_after_idle_s=settings.db_ping_after_idle_s,
        application_name="ledgerflow-relay",
    )
    bootstrap = settings.kafka_bootstrap
    if not wait_for("PostgreSQL", lambda: check_database(engine), stop):
        return 0
    if not wait_for(f"Kafka at {bootstrap}", lambda: ensure_topics(bootstrap), stop):
        return 0

    failed = threading.Event()
    workers: list[tuple[str, Callable[[threading.Event], None]]] = []
    if args.role in ("all", "publisher"):
        workers.append(("publisher", OutboxRelay(engine, bootstrap).run))
    if args.role in ("all", "consumers"):
        prefix = os.environ.get(GROUP_PREFIX_ENV, "ledgerflow")
        for handler in (Notifier(), ActivityProjection()):
            consumer = EventConsumer(engine, bootstrap, handler, group_id=f"{prefix}.{handler.name}")
            consumer.subscribe()
            workers.append((handler.name, consumer.run))
        if settings.risk_enabled:
            # Assesses each transfer.initiated and delivers the verdict to its workflow (left
            # for the code check to read, or signalled: relay/risk.py).
            risk = RiskConsumer(engine, bootstrap, settings, group_id=f"{prefix}.risk")
            risk.subscribe()
            workers.append(("risk", risk.run))

    threads = [threading.Thread(target=_guarded(name, run, stop, failed), name=name) for name, run in workers]
    for thread in threads:
        thread.start()
    log.info("%s (role %s: %s; kafka %s)", READY_LINE, args.role, ", ".join(name for name, _ in workers), bootstrap)

    while not stop.is_set():
        stop.wait(1.0)
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.1, deadline - time.monotonic()))
    engine.dispose()
    if failed.is_set():
        log.error("relay stopped after a thread failed")
        return 1
    log.info("relay stopped")
    return 0


def _guarded(
    name: str, run: Callable[[threading.Event], None], stop: threading.Event, failed: threading.Event
) -> Callable[[], None]:
    """A thread body that stops the whole process if `run` dies: a relay missing its
    publisher or a consumer must not look alive to the supervisor."""

    def body() -> None:
        try:
            run(stop)
        except BaseException:
            log.exception("%s thread died; stopping the relay", name)
            failed.set()
            stop.set()

    return body
