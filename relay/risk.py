"""The risk consumer: assesses each `transfer.initiated` and delivers the verdict to the
transfer's workflow.

Two halves, so that neither a crash nor a redelivery can apply a verdict twice or lose one:
1. `RiskAssessor` (a relay.consumer Handler) records the assessment, its `risk.assessed`
   outbox event and the event's dedup row in ONE transaction (risk.assess); a redelivered
   event finds its dedup row (or the assessment) and writes nothing. When the transfer still
   waits for its code (the usual case: the verdict comes well before the customer types the
   code), the same transaction marks the verdict delivered `by check` and nothing is sent:
   the step that takes the code reads it (risk.assess.leave_for_check says why neither side
   can miss the other).
2. After each batch commits, `RiskConsumer` signals the batch's other new assessments to their
   workflows and marks them (`signalled_at`). A crash between the signal and the mark
   re-sends the same verdict, keyed by the event id, which the workflow ignores (it takes the
   first verdict only). A workflow that has closed is marked too: nothing waits for it.
   Whatever a batch could not deliver (Temporal unreachable, a member that died between its
   commit and its signals) is found by a sweep of `signalled_at IS NULL`, at start-up and
   every `SWEEP_S` (not after every poll: an idle consumer does not query the database).
The Temporal client lives on this consumer's own thread and event loop; while Temporal is
unreachable the assessments wait in the table and go out once it answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from prometheus_client import Counter, Histogram
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from contracts.transfer import RiskVerdict
from ledger.db import Conn
from ledger.uow import UnitOfWork
from relay.consumer import EventConsumer
from relay.envelope import Event, MalformedEvent, data_uuid
from relay.options import ConsumerOptions
from relay.topics import TRANSFERS
from risk import assess as risk_assess
from risk.rules import Rule

log = logging.getLogger(__name__)

TRANSFER_INITIATED: Final = "transfer.initiated"
SIGNAL: Final = "risk_verdict"
DELIVER_BATCH: Final = 200
# How often a member looks for verdicts left undelivered. A verdict waits this long at most
# after Temporal answers again (or after another member died holding it), well inside
# LEDGERFLOW_RISK_WAIT_S (5 s by default) for a transfer that is still waiting.
SWEEP_S: Final = 1.0

VERDICTS: Final = Counter(
    "ledgerflow_risk_verdicts_total",
    "Risk assessments by verdict and by the rule that fired ('none' for an allow)",
    ["verdict", "rule"],
)
DELIVERIES: Final = Counter(
    "ledgerflow_risk_verdict_deliveries_total",
    "Verdicts by how they reached the workflow: 'signal', or 'check' (read when the code was taken)",
    ["by"],
)
VERDICT_LATENCY: Final = Histogram(
    "ledgerflow_risk_verdict_latency_seconds",
    "From the transfer.initiated commit to the verdict reaching the workflow (its signal, or the commit "
    "that left it for the code check)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


class RiskAssessor:
    """Consumer of ledgerflow.transfers: assesses `transfer.initiated` (a relay.consumer Handler)."""

    name = "risk"
    topics: Sequence[str] = (TRANSFERS,)

    def __init__(self) -> None:
        # The current batch's rules (read once, in its transaction) and its new assessments,
        # to be signalled once the batch has committed (never before: a rolled-back verdict
        # must not reach a workflow).
        self._rules: list[Rule] | None = None
        self._to_signal: list[risk_assess.StoredAssessment] = []
        self._at_check: list[risk_assess.StoredAssessment] = []

    def begin_batch(self) -> None:
        self._rules = None
        self._to_signal.clear()
        self._at_check.clear()

    def take_recorded(self) -> tuple[list[risk_assess.StoredAssessment], list[risk_assess.StoredAssessment]]:
        """The batch's new assessments once it has committed: those to signal, and those left
        for the code check to read (both lists start empty again)."""
        taken = (self._to_signal, self._at_check)
        self._to_signal, self._at_check = [], []
        return taken

    def handles(self, event_type: str) -> bool:
        return event_type == TRANSFER_INITIATED

    def apply(self, conn: Conn, event: Event) -> None:
        """Raises: MalformedEvent when the event lacks what the rules need."""
        data = event.data
        amount = data.get("source_amount_minor")
        currency = data.get("source_currency")
        workflow_id = data.get("workflow_id")
        if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str):
            raise MalformedEvent("data.source_amount_minor or data.source_currency is missing")
        transfer_id = data_uuid(data, "transfer_id")
        customer_id = data_uuid(data, "customer_id")
        source = data_uuid(data, "source_account_id")
        destination = data_uuid(data, "destination_account_id")
        assert transfer_id and customer_id and source and destination  # required=True
        initiated = risk_assess.InitiatedTransfer(
            event_id=event.id,
            transfer_id=transfer_id,
            customer_id=customer_id,
            source_account_id=source,
            destination_account_id=destination,
            amount_minor=amount,
            currency=currency,
            workflow_id=workflow_id if isinstance(workflow_id, str) else f"transfer-{transfer_id}",
            initiated_at=event.time,
        )
        if self._rules is None:
            self._rules = [stored.rule for stored in risk_assess.list_rules(conn)]
        recorded = risk_assess.record_assessment(conn, initiated, self._rules)
        if recorded is None:
            return
        for rule in recorded.reasons or ("none",):
            VERDICTS.labels(recorded.verdict, rule).inc()
        # A transfer still waiting for its code reads the verdict when the code is taken: no
        # signal (and no workflow task for it). Otherwise it goes by signal after the commit.
        if risk_assess.leave_for_check(conn, recorded.transfer_id):
            self._at_check.append(recorded)
        else:
            self._to_signal.append(recorded)


class RiskConsumer(EventConsumer):
    """The risk group's member: assess a batch, then deliver the verdicts not yet delivered."""

    def __init__(
        self,
        engine: Engine,
        bootstrap: str,
        settings: Settings,
        *,
        group_id: str | None = None,
        options: ConsumerOptions | None = None,
        client: Client | None = None,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self._assessor = RiskAssessor()
        super().__init__(
            engine, bootstrap, self._assessor, group_id=group_id, options=options, start_offsets=start_offsets
        )
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._client = client
        self._next_connect = 0.0
        self._next_sweep = 0.0  # at once: a restart delivers what the last run left behind

    def run(self, stop: threading.Event) -> None:
        try:
            super().run(stop)
        finally:
            self._loop.close()

    def poll_once(self) -> int:
        self._assessor.begin_batch()
        n = super().poll_once()  # returns only once the batch has committed (raises if not)
        to_signal, at_check = self._assessor.take_recorded()
        self._deliver(to_signal)  # what fails here, a sweep delivers later
        # Delivered by their commit: from now on the code check reads them.
        _observe_delivered(at_check, "check")
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_S
            self.deliver_pending()
        return n

    def _temporal(self) -> Client | None:
        if self._client is not None:
            return self._client
        if time.monotonic() < self._next_connect:
            return None
        from worker.temporal_client import connect  # the one way to connect (encrypting converter)

        try:
            self._client = self._loop.run_until_complete(asyncio.wait_for(connect(self._settings), 10))
        except Exception as exc:  # any failure to connect: retry on a later batch
            self._next_connect = time.monotonic() + 2.0
            log.warning("risk: Temporal unreachable (%s); verdicts wait in risk_assessments", exc)
            return None
        return self._client

    def deliver_pending(self) -> int:
        """Signal the verdicts not yet delivered (the sweep); returns how many were marked
        delivered."""
        with UnitOfWork(self.engine) as uow:  # reads only: rolled back
            # Only verdicts older than a sweep: a younger one is most likely being delivered
            # right now by the member that recorded it (a second signal is harmless, but it
            # costs the workflow a task).
            pending = risk_assess.unsignalled(uow.conn, DELIVER_BATCH, older_than_s=SWEEP_S)
        return len(self._deliver(pending))

    def _deliver(self, pending: list[risk_assess.StoredAssessment]) -> list[risk_assess.StoredAssessment]:
        """Signal each verdict to its workflow and mark the ones that arrived (or whose
        workflow is gone); returns those."""
        if not pending:
            return []
        client = self._temporal()
        if client is None:
            return []
        delivered = self._loop.run_until_complete(self._signal_all(client, pending))
        if delivered:
            with UnitOfWork(self.engine) as uow:
                risk_assess.mark_signalled(uow.conn, [a.transfer_id for a in delivered])
                uow.commit()
        _observe_delivered(delivered, "signal")
        return delivered

    async def _signal_all(
        self, client: Client, pending: list[risk_assess.StoredAssessment]
    ) -> list[risk_assess.StoredAssessment]:
        async def one(assessment: risk_assess.StoredAssessment) -> risk_assess.StoredAssessment | None:
            try:
                await client.get_workflow_handle(assessment.workflow_id).signal(SIGNAL, RiskVerdict.of(assessment))
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return assessment  # closed or gone: nothing waits for this verdict
                log.warning("risk: could not signal %s (%s); will retry", assessment.workflow_id, err.message)
                return None
            return assessment

        results = await asyncio.gather(*(one(a) for a in pending))
        return [a for a in results if a is not None]


def _observe_delivered(assessments: list[risk_assess.StoredAssessment], by: str) -> None:
    if not assessments:
        return
    DELIVERIES.labels(by).inc(len(assessments))
    now = datetime.now(UTC)
    for assessment in assessments:
        VERDICT_LATENCY.observe(max(0.0, (now - assessment.initiated_at).total_seconds()))
