"""The outbox relay: read the outbox by cursor, produce each page, pass it once Kafka acked it.

One page at a time, from the relay's cursor (migration 0009_outbox_cursor):

    read the next page after the cursor  ->  produce  ->  wait for every delivery report
    ->  move the cursor past the acknowledged rows, park the poison ones  ->  commit

Several relays may run against one database; one of them leads (a session-level advisory
lock, see relay.outbox_store.LEADER_LOCK_KEY) and publishes, the others poll for the lock and
take over when the leader stops or dies. The cursor passes a row only after Kafka acknowledged
it. A crash anywhere before the commit leaves the cursor where it was (and frees the lock), so
the rows are published again later: at least once, never lost; consumers deduplicate by event
id.

To keep PostgreSQL and Kafka both busy, the running relay pipelines the pages: while page k
waits for its acks, page k+1 is read on a second connection, and while the cursor moves past
page k, page k+1 is produced. Page k+1 is produced only after every row of page k was
acknowledged; if any was not, page k+1 is dropped unproduced, so no row ever overtakes an
older row of its key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import KafkaError
from sqlalchemy import Engine

from ledger.db import Conn
from ledger.uow import UnitOfWork, session
from relay import metrics, outbox_store
from relay.backoff import Backoff
from relay.failures import DATABASE_DOWN
from relay.faults import AFTER_ACKS, crash_point
from relay.options import RelayOptions
from relay.outbox_store import Page
from relay.producer import BatchDelivery, EventProducer, InFlightBatch
from relay.read_ahead import ReadAhead
from relay.topics import TopicSetupError, ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchReport:
    """What one claim transaction did."""

    claimed: int = 0
    published: int = 0
    retried: int = 0
    parked: int = 0
    first_error: str | None = None
    unknown_topic: bool = False


def _never() -> bool:
    return False


def _settle(futures: list[Future[Any]]) -> None:
    """Wait for database work still running on the pipeline's connections (after an error),
    so that no connection goes back to the pool while the database thread still uses it."""
    for future in futures:
        try:
            future.result()
        except BaseException:  # the error that matters is already propagating
            log.debug("pipeline task failed while unwinding", exc_info=True)


class OutboxRelay:
    """Publishes the outbox to Kafka; several instances may run against one database.

    Not thread-safe: one thread drives an instance (`run`, `drain` or `publish_once`).
    """

    def __init__(
        self,
        engine: Engine,
        bootstrap: str,
        options: RelayOptions | None = None,
        *,
        on_acked: Callable[[Sequence[str], Sequence[float]], None] | None = None,
    ) -> None:
        """`on_acked(ids, acked_at)` is told of every delivered batch: the row ids and Kafka's
        acknowledgement times (epoch seconds), before the cursor's commit (the lag benchmark)."""
        self.engine = engine
        self._on_acked = on_acked
        self.options = options or RelayOptions()
        self._bootstrap = bootstrap
        self._producer = EventProducer(bootstrap, self.options, on_error=self._on_kafka_error)
        self._backoff = Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)
        self._kafka_reported_down = False
        self._fatal = threading.Event()
        self._next_backlog_refresh = 0.0
        self._following = False  # the last pass found another relay leading
        # The cursor's side of the pipeline (leading, loading, recording pages) runs here, so
        # that the driving thread can produce meanwhile.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="relay-db")
        metrics.DEPENDENCY_UP.labels("kafka").set(1)
        metrics.DEPENDENCY_UP.labels("database").set(1)

    def connect(self, *, timeout_s: float) -> bool:
        """Wait until a broker answers (the producer connects lazily); False on timeout."""
        return self._producer.probe(timeout_s)

    def close(self) -> None:
        """Flush what is still queued and stop the database thread."""
        self._producer.close()
        self._db.shutdown(wait=True)

    # -- one batch, one transaction --------------------------------------------------------

    def publish_batch(self, conn: Conn, *, abandon: Callable[[], bool] = _never) -> BatchReport:
        """Claim, produce and record one page inside the caller's open transaction on `conn`.

        Nothing is final until the caller commits; rolling back instead leaves the cursor
        where it was (already produced rows are then published again by a later page).
        """
        conn.execute(outbox_store.TRANSACTION_SETTINGS)
        if not outbox_store.try_lead_transaction(conn):
            return BatchReport()  # another relay is publishing
        page = outbox_store.claim(conn, outbox_store.load_cursor(conn), self.options.batch_size)
        if not page.rows:
            return BatchReport()
        delivery = self._producer.publish(page.rows, abandon=abandon)
        crash_point(AFTER_ACKS)
        return self._record(conn, page, delivery)

    def publish_once(self, *, abandon: Callable[[], bool] = _never) -> BatchReport:
        """One page in one transaction, committed.

        Raises:
            psycopg.OperationalError, sqlalchemy.exc.OperationalError: PostgreSQL unreachable.
        """
        started = time.perf_counter()
        with UnitOfWork(self.engine) as uow:
            report = self.publish_batch(uow.conn, abandon=abandon)
            uow.commit()
        if report.claimed:
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self._replace_producer_if_fatal()
        return report

    def _record(self, conn: Conn, page: Page, delivery: BatchDelivery) -> BatchReport:
        """Write one page's outcome on `conn`, the leader's session (the caller commits): the
        cursor moves past every row up to the first one still to be retried (acknowledged and
        parked rows alike), the poison rows are parked with their error."""
        rows = page.rows
        if delivery.fatal:
            self._fatal.set()
        through = min((i for i, _ in delivery.retry), default=len(rows))
        outbox_store.commit_page(
            conn,
            page,
            through=through,
            events=sum(1 for i in delivery.delivered if i < through),
            parked=[(rows[i].id, error) for i, error in delivery.poison],
        )
        for i, error in delivery.poison:
            log.error(
                "parked outbox row %s (%s, key %s): %s; see relay.outbox_store.parked_rows",
                outbox_store.text_of(rows[i].id),
                rows[i].topic,
                outbox_store.text_of(rows[i].key),
                error,
            )
        if delivery.retry:
            outbox_store.record_failure(conn, delivery.retry[0][1])

        delivered = delivery.delivered
        for topic, count in Counter(rows[i].topic for i in delivered).items():
            metrics.PUBLISHED.labels(topic).inc(count)
        if delivered:
            # One observation per page: its first row (the oldest) up to the page's last ack,
            # the worst lag in the page. Observing every row cost a microsecond a row.
            metrics.PUBLISH_LAG.observe(max(0.0, max(delivery.acked_at) - rows[delivered[0]].created_epoch_s))
        if self._on_acked is not None and delivery.delivered:
            self._on_acked([outbox_store.text_of(rows[i].id) for i in delivery.delivered], delivery.acked_at)
        metrics.PARKED.inc(len(delivery.poison))
        metrics.PUBLISH_FAILURES.inc(len(delivery.retry))
        return BatchReport(
            claimed=len(rows),
            published=len(delivery.delivered),
            retried=len(delivery.retry),
            parked=len(delivery.poison),
            first_error=delivery.retry[0][1] if delivery.retry else None,
            unknown_topic=delivery.unknown_topic,
        )

    def _replace_producer_if_fatal(self) -> None:
        if self._fatal.is_set():
            log.error("kafka producer hit a fatal error; starting a new producer")
            self._producer.replace()
            self._fatal.clear()

    # -- the pipeline --------------------------------------------------------------------------

    @staticmethod
    def _lead(conn: Conn) -> bool:
        leading = outbox_store.try_lead(conn)
        conn.commit()
        return leading

    def _resign(self, conn: Conn) -> None:
        """Give up the leader lock before the connection goes back to the pool (a pooled
        connection holding it would keep every other relay idle). A broken connection has
        lost the lock with its session already."""

        def resign() -> None:
            if not conn.autocommit:
                conn.rollback()
            outbox_store.resign(conn)
            if not conn.autocommit:
                conn.commit()

        try:
            self._db.submit(resign).result()
        except (psycopg.Error, *DATABASE_DOWN):
            # Ending the session is the other way to release it (the pool then discards
            # the closed connection).
            log.warning("could not release the leader lock; closing its connection", exc_info=True)
            conn.close()

    def _record_and_commit(self, conn: Conn, page: Page, delivery: BatchDelivery, started: float) -> BatchReport:
        report = self._record(conn, page, delivery)  # the leader's session is in autocommit mode
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return report

    def _pipeline(self, stop_claiming: Callable[[], bool], abandon: Callable[[], bool]) -> Iterator[BatchReport]:
        """Publish page after page; yields each committed page's report. Ends when a page
        comes without rows, when `stop_claiming()` is true (after finishing the page in
        flight), or after a page that was not fully delivered (the caller backs off).

        Three threads share the work: a reader (relay.read_ahead) reads the next pages on a
        connection of its own; this thread produces pages, up to `pages_in_flight` of them
        unacknowledged, and collects their acks in order; the database thread (`self._db`)
        moves the cursor past each acknowledged page, in order, on the leader's session.

        Raises:
            psycopg.OperationalError, sqlalchemy.exc.OperationalError: PostgreSQL unreachable;
                the cursor stays at the last recorded page, so the rest goes out again later.
        """
        db = self._db
        pending: list[Future[Any]] = []  # DB work that must end before its connection is returned
        with ExitStack() as connections:
            # A session: each page's record is one atomic statement (outbox_store.commit_page),
            # and the leader lock lives as long as the session (ledger.uow.session).
            leader = connections.enter_context(session(self.engine))
            self._following = not db.submit(self._lead, leader).result()
            if self._following:
                return  # another relay leads; the caller polls again
            connections.callback(self._resign, leader)
            try:
                cursor = db.submit(outbox_store.load_cursor, leader).result()
                reader = connections.enter_context(session(self.engine))
                ahead = ReadAhead(reader, cursor, limit=self.options.batch_size, depth=self.options.read_ahead_pages)
                connections.callback(ahead.close)  # runs before the reader's connection goes back
                page: Page | None = ahead.next()
                in_flight: deque[tuple[Page, InFlightBatch, float]] = deque()
                finishing: Future[BatchReport] | None = None
                while True:
                    if page is not None and page.rows and len(in_flight) < self.options.pages_in_flight:
                        in_flight.append((page, self._producer.produce(page.rows), time.perf_counter()))
                        page = None if stop_claiming() else ahead.next()
                        continue
                    if not in_flight:
                        break
                    done, batch, started = in_flight.popleft()
                    delivery = self._producer.collect(batch, abandon=abandon, later_in_flight=bool(in_flight))
                    crash_point(AFTER_ACKS)
                    if finishing is not None:  # page k-1 was recorded while page k was acknowledged
                        yield finishing.result()
                    finishing = db.submit(self._record_and_commit, leader, done, delivery, started)
                    pending[:] = [f for f in pending if not f.done()] + [finishing]
                    if delivery.retry or delivery.fatal:
                        # The cursor stays before the rows that failed. Later pages are not
                        # recorded (their rows go out again, after these); wait for the
                        # reports of those already produced, so that none is left behind.
                        for _, later, _ in in_flight:
                            self._producer.collect(later, abandon=abandon)
                        break
                if finishing is not None:
                    yield finishing.result()
            finally:
                # On an error, let the database thread finish with the leader's connection
                # before it is returned to the pool.
                _settle(pending)
        self._replace_producer_if_fatal()

    # -- draining and the loop ---------------------------------------------------------------

    def drain(self, *, timeout_s: float = 60.0) -> int:
        """Publish until no publishable row is left, or the timeout; returns rows published.
        For tests and benchmarks; the process uses `run`.

        Raises:
            psycopg.OperationalError, sqlalchemy.exc.OperationalError: PostgreSQL unreachable.
        """
        deadline = time.monotonic() + timeout_s
        total = 0
        while time.monotonic() < deadline:
            claimed = retried = 0
            for report in self._pipeline(lambda: time.monotonic() >= deadline, _never):
                total += report.published
                claimed += report.claimed
                retried += report.retried
            if retried:
                time.sleep(min(self._backoff.next_delay(), max(0.0, deadline - time.monotonic())))
            elif claimed == 0 and self._backlog_or_none() == 0:
                break
            elif claimed == 0:  # rows held by another relay, or held back behind them
                time.sleep(self.options.idle_poll_s)
        return total

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop` is set, then finish the batch in flight and flush.

        Kafka or PostgreSQL being down never ends the loop: the rows wait in the outbox while
        the relay retries with capped exponential backoff, and it resumes by itself.
        """
        kafka_down = False
        try:
            while not stop.is_set():
                if kafka_down:
                    # Probe before claiming: no point holding row locks for a delivery
                    # timeout while the broker is still gone.
                    if not self._producer.probe(timeout_s=2.0):
                        self._wait(stop, "kafka still unreachable")
                        continue
                    # The broker answers; the next batch tells whether it takes events (the
                    # backoff keeps growing until one does).
                    kafka_down = False
                claimed = 0
                failed: BatchReport | None = None
                try:
                    for report in self._pipeline(stop.is_set, stop.is_set):
                        claimed += report.claimed
                        if report.retried:
                            failed = report
                        self._refresh_backlog()
                except DATABASE_DOWN as exc:
                    metrics.DEPENDENCY_UP.labels("database").set(0)
                    self._wait(stop, f"database unavailable ({type(exc).__name__}: {str(exc).strip()[:200]})")
                    continue
                metrics.DEPENDENCY_UP.labels("database").set(1)
                if failed is not None and failed.unknown_topic:
                    self._recreate_topics()
                if failed is not None:
                    kafka_down = True
                    metrics.DEPENDENCY_UP.labels("kafka").set(0)
                    self._wait(
                        stop,
                        f"{failed.retried} of {failed.claimed} events not delivered ({failed.first_error}); "
                        "they stay in the outbox",
                    )
                    continue
                if self._backoff.failing or (claimed and self._kafka_reported_down):
                    # A pass without failures. (With claimed rows and an outage reported by
                    # librdkafka, it reconnected and delivered within the delivery timeout:
                    # the outage ended without a failed batch.)
                    self._recovered()
                self._refresh_backlog()
                if claimed == 0:
                    stop.wait(self.options.follower_poll_s if self._following else self.options.idle_poll_s)
        finally:
            self.close()
            log.info("relay publisher stopped")

    def _recreate_topics(self) -> None:
        """A topic the outbox names is gone (deleted by hand?): create the missing ones again,
        with their configured partitions and retention, so the waiting rows can go out."""
        try:
            created = ensure_topics(self._bootstrap)
        except TopicSetupError as exc:
            log.error("a topic is missing and could not be created again: %s", exc)
            return
        if created:
            log.warning("topics %s were missing and have been created again", ", ".join(created))

    def _wait(self, stop: threading.Event, reason: str) -> None:
        delay = self._backoff.next_delay()
        metrics.BACKOFF_SECONDS.set(delay)
        backlog = self._backlog_or_none()
        log.warning(
            "relay backing off %.1fs (attempt %d): %s; outbox backlog %s",
            delay,
            self._backoff.failures,
            reason,
            "unknown" if backlog is None else backlog,
        )
        stop.wait(delay)

    def _recovered(self) -> None:
        retries = f" after {self._backoff.failures} retries" if self._backoff.failing else ""
        log.info("relay resumed: Kafka and PostgreSQL reachable again%s", retries)
        self._backoff.reset()
        self._kafka_reported_down = False
        metrics.BACKOFF_SECONDS.set(0)
        metrics.DEPENDENCY_UP.labels("kafka").set(1)
        metrics.DEPENDENCY_UP.labels("database").set(1)

    def _refresh_backlog(self) -> None:
        now = time.monotonic()
        if now < self._next_backlog_refresh:
            return
        self._next_backlog_refresh = now + self.options.backlog_refresh_s
        self._backlog_or_none()

    def _backlog_or_none(self) -> int | None:
        try:
            with session(self.engine) as conn:
                backlog = outbox_store.backlog(conn)
        except DATABASE_DOWN:
            return None
        metrics.OUTBOX_BACKLOG.set(backlog)
        return backlog

    def _on_kafka_error(self, error: KafkaError) -> None:
        """librdkafka's error callback (runs inside poll/flush on the producing thread)."""
        if error.fatal():
            self._fatal.set()
            log.error("kafka fatal error: %s", error.str())
            return
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT) and not self._kafka_reported_down:
            self._kafka_reported_down = True
            metrics.DEPENDENCY_UP.labels("kafka").set(0)
            log.warning("kafka unreachable: %s; events wait in the outbox until it is back", error.str())
