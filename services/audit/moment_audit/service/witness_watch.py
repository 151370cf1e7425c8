"""The running service watches its own checkpoints: deleting, rewriting or hiding one raises an
alert within `witness_every_seconds` (plus `witness_grace_s` for a hidden one), no command run.

A reader follows `audit.checkpoints` into the witness's memory (adapters/live_witness.py); every
`witness_every_seconds` the store's chained checkpoints are compared with it
(service/witness_memory.py), and each finding raises one high `verification-failed` alert through
the outbox, with the id the same finding has in the hourly verification (service/watch.py), so it
is alerted once across sweeps, restarts and instances. Nothing is compared before the reader has
reached the stream's end once: a restarted service has forgotten everything it witnessed.

The hourly verification gets the witness too: the live findings join its report, and while the
store disagrees with the witness the stream is read whole and lent to it
(`moment-audit verify --witness-stream`), so the chains are judged against the checkpoints the
store lost (TRUNCATED, DELETED, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from moment_audit.adapters.checkpoint_stream import StreamUnavailable, read_checkpoint_stream
from moment_audit.adapters.live_witness import StreamWitnessReader
from moment_audit.adapters.witness_rows import present, stored_checkpoints
from moment_audit.config import WatchConfig
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import (
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    Finding,
    Report,
)
from moment_audit.service.watch import alert_findings
from moment_audit.service.witness_memory import Comparison, missing_findings
from moment_contracts.alerts import AlertRaised
from moment_messaging.config import KafkaConfig
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

# Stored checkpoints compared between two chances for other tasks to run.
YIELD_EVERY = 1000


class WitnessWatch:
    def __init__(
        self,
        uow_factory: Callable[[], SqlUnitOfWork],
        config: WatchConfig,
        reader: StreamWitnessReader,
        kafka: KafkaConfig,
    ) -> None:
        self._uow_factory = uow_factory
        self.config = config
        self.reader = reader
        self._kafka = kafka
        # What the last comparison found: for the hourly verification's report.
        self.findings: list[Finding] = []
        self._said_waiting = False
        self._tasks: list[asyncio.Task[None]] = []

    async def compare(self) -> list[Finding] | None:
        """The store against the witness; None until the reader has reached the stream's end."""
        caught_up = self.reader.caught_up_at
        if caught_up is None:
            if not self._said_waiting:
                log.info("audit witness: comparing nothing until audit.checkpoints is read")
                self._said_waiting = True
            return None
        grace = timedelta(seconds=self.config.witness_grace_s)
        comparison = Comparison(self.reader.witness, caught_up - grace)
        async with self._uow_factory() as uow:
            fed = 0
            async for stored in stored_checkpoints(uow.session):
                comparison.feed(stored)
                fed += 1
                if fed % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        found = comparison.finish()
        if comparison.missing:
            keys = [(partition, number) for partition, number, _ in comparison.missing]
            async with self._uow_factory() as uow:
                found += missing_findings(comparison.missing, await present(uow.session, keys))
        self.findings = sorted(found)
        return self.findings

    async def sweep(self) -> list[AlertRaised]:
        """Compare, and raise an alert for each finding not alerted before."""
        found = await self.compare()
        if not found:
            return []
        async with self._uow_factory() as uow:
            raised = await alert_findings(
                uow, Report(findings=found), self.config.max_verification_alerts
            )
        if raised:
            # Once per new alert, not every sweep while the damage stays.
            log.warning(
                "audit witness: %d findings against audit.checkpoints, %d new alerts",
                len(found),
                len(raised),
            )
        return raised

    async def lend(self) -> list[Checkpoint]:
        """What the hourly verification should be given: the whole stream while the store lacks or
        differs from a witnessed checkpoint, else nothing (the comparison vouched for it)."""
        if not any(f.kind in (CHECKPOINT_MISSING, CHECKPOINT_MISMATCH) for f in self.findings):
            return []
        try:
            return (await read_checkpoint_stream(self._kafka)).checkpoints
        except StreamUnavailable as exc:
            log.warning("audit witness: the stream not lent to the verification: %s", exc)
            return []

    def add_to(self, report: Report) -> None:
        """The live findings into the hourly report (the same finding is not named twice)."""
        report.findings.extend(f for f in self.findings if f not in report.findings)
        report.findings.sort()

    async def _sweeping(self) -> None:
        while True:
            try:
                await self.sweep()
            except (PersistenceError, OSError) as exc:
                log.warning("audit witness comparison failed, will retry: %s", exc)
            except Exception:
                # Whatever it was, the next sweep may succeed: the watch must not die quietly.
                log.exception("audit witness comparison failed")
            await asyncio.sleep(self.config.witness_every_seconds)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.reader.run(), name="audit-witness-reader"),
            asyncio.create_task(self._sweeping(), name="audit-witness-compare"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
