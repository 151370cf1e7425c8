"""The background watch: gaps and repeats in producers' sequences, and periodic verification.

Gaps are judged from the store, not from what one instance happened to see (domain/gaps.py):
every `sweep_seconds` the watch scans the records stored since its last look (for repeated
numbers and new producers), then, per producer, raises the holes whose grace period has passed,
even when no record arrives, and moves the producer's contiguous mark past them. The grace
period counts from when the service's consumer was last back, too (`consuming`): while it has no
partitions (starting, rebalancing) no hole is called overdue, so a restart after a long outage
first reads what waited for it. Every
`verify_every_seconds` it verifies the whole store, as `moment-audit verify` does, and raises one
`verification-failed` alert per finding. Alerts go through the outbox, in the transaction that
moves the watch's progress; ids already in the outbox are not raised again, so neither a restart,
a second instance nor the next verification of the same damage repeats an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from moment_audit.adapters.orm import messaging
from moment_audit.adapters.watch_store import Scanned, SqlWatchStore
from moment_audit.config import WatchConfig
from moment_audit.domain.findings import verification_alert
from moment_audit.domain.gaps import baseline, gap_alert, repeat_alert, settle
from moment_audit.service.streams import alert_messages
from moment_audit.service.verification import NoSignatureCheck
from moment_audit.service.verify import TRUNCATED, Finding, Report
from moment_contracts.alerts import AlertRaised
from moment_crypto.errors import CryptoError
from moment_messaging.outbox import add_to_outbox
from moment_persistence.errors import PersistenceError
from moment_persistence.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

SCAN = "repeat-scan"
SCAN_BATCH = 5000
# Ids are taken at INSERT and rows appear at COMMIT, so a record can show up after one with a
# higher id: the scan looks again at records this recent, and moves past them only later.
COMMIT_SLACK = timedelta(seconds=10)
# Alert ids looked up in the outbox per query.
LOOKUP_BATCH = 500

Verification = Callable[[], Awaitable[Report]]
# When the consumer of audit.events last had its partitions assigned; None while it has none.
Consuming = Callable[[], datetime | None]


def _now() -> datetime:
    return datetime.now(UTC)


async def raise_new(
    session: AsyncSession, alerts: Sequence[AlertRaised], limit: int | None = None
) -> list[AlertRaised]:
    """Outbox the alerts whose ids are not in the outbox yet (at most `limit`), in the caller's
    transaction; returns them."""
    fresh: list[AlertRaised] = []
    store = SqlWatchStore(session)
    for start in range(0, len(alerts), LOOKUP_BATCH):
        chunk = alerts[start : start + LOOKUP_BATCH]
        known = await store.raised([a.alert_id for a in chunk])
        fresh.extend(a for a in chunk if a.alert_id not in known)
        if limit is not None and len(fresh) >= limit:
            break
    fresh = list({a.alert_id: a for a in fresh}.values())[:limit]
    await add_to_outbox(session, messaging, alert_messages(fresh))
    return fresh


def _finding_key(finding: Finding) -> str:
    # A truncation's detail names the chain's head, which moves on as records arrive.
    detail = "" if finding.kind == TRUNCATED else finding.detail
    return f"{finding.partition}:{finding.seq}:{finding.kind}:{detail}"


def findings_alerts(report: Report, at: datetime) -> list[AlertRaised]:
    """One alert per finding; the same finding in a later verification has the same id."""
    return [verification_alert(_finding_key(f), f.line(), at) for f in report.findings]


async def alert_findings(uow: SqlUnitOfWork, report: Report, limit: int) -> list[AlertRaised]:
    """Outbox and commit an alert for each finding not alerted before (at most `limit`): for
    the watch, and for `moment-audit verify --alert`."""
    alerts = findings_alerts(report, _now())
    raised = await raise_new(uow.session, alerts, limit)
    await uow.commit()
    return raised


def _settled_id(rows: list[Scanned], after: int, cutoff: datetime) -> int:
    """How far the scan may move: up to the first record too recent to rule out an earlier id
    still committing."""
    settled = after
    for row in rows:
        if row.received_at > cutoff:
            break
        settled = row.id
    return settled


class Watch:
    def __init__(
        self,
        uow_factory: Callable[[], SqlUnitOfWork],
        config: WatchConfig,
        grace: timedelta,
        verification: Verification | None = None,
        clock: Callable[[], datetime] = _now,
        consuming: Consuming | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self.config = config
        # Public so tests of a running service can shorten it.
        self.grace = grace
        self._verification = verification
        self._clock = clock
        # None: no consumer in this process (grace counts from when audit stored the records).
        self._consuming = consuming
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Sweep now rather than at the end of the current wait (after a change of settings)."""
        self._wake.set()

    async def sweep(self) -> list[AlertRaised]:
        """One pass: repeats and new producers since the last scan, then overdue holes."""
        raised = await self._scan()
        async with self._uow_factory() as uow:
            sources = list(await SqlWatchStore(uow.session).marks())
        for source in sources:
            raised += await self._settle(source)
        return raised

    async def _scan(self) -> list[AlertRaised]:
        raised: list[AlertRaised] = []
        while True:
            async with self._uow_factory() as uow:
                store = SqlWatchStore(uow.session)
                after = await store.progress(SCAN)
                rows = await store.scan(after or 0, SCAN_BATCH)
                if not rows:
                    return raised
                moved = _settled_id(rows, after or 0, self._clock() - COMMIT_SLACK)
                # Also when it does not move: the row lock makes a second instance wait, then fail.
                if not await store.move_progress(SCAN, after, moved):
                    return raised
                await store.follow(r.source for r in rows if r.numbered)
                repeats = await store.repeats(after or 0, rows[-1].id)
                raised += await raise_new(uow.session, [repeat_alert(s, r) for s, r in repeats])
                await uow.commit()
            if len(rows) < SCAN_BATCH or moved != rows[-1].id:
                return raised

    async def _settle(self, source: str) -> list[AlertRaised]:
        resumed = None if self._consuming is None else self._consuming()
        if self._consuming is not None and resumed is None:
            # Not consuming: a missing number could not have arrived, so no grace runs.
            return []
        async with self._uow_factory() as uow:
            store = SqlWatchStore(uow.session)
            mark = await store.mark(source)
            now = self._clock()
            start = mark
            if start is None:
                lowest = await store.lowest(source)
                start = None if lowest is None else baseline(*lowest, now, self.grace, resumed)
                if start is None:
                    return []
            highest = await store.highest(source) or start
            if highest <= start and start == mark:
                return []
            holes = await store.holes(source, start) if highest > start else []
            settled = settle(start, highest, holes, now, self.grace, resumed)
            if settled.contiguous == mark or not await store.move_mark(
                source, mark, settled.contiguous
            ):
                return []
            alerts = [gap_alert(source, hole, now) for hole in settled.overdue]
            raised = await raise_new(uow.session, alerts)
            await uow.commit()
        return raised

    async def verify(self) -> list[AlertRaised]:
        """Verify the store; one alert per finding not alerted before."""
        if self._verification is None:
            return []
        report = await self._verification()
        async with self._uow_factory() as uow:
            raised = await alert_findings(uow, report, self.config.max_verification_alerts)
        if report.findings:
            log.warning(
                "audit store verification: %d findings, %d new alerts",
                len(report.findings),
                len(raised),
            )
        return raised

    async def _sweeping(self) -> None:
        while True:
            try:
                await self.sweep()
            except (PersistenceError, OSError) as exc:
                log.warning("audit watch sweep failed, will retry: %s", exc)
            except Exception:
                # Whatever it was, the next sweep may succeed: the watch must not die quietly.
                log.exception("audit watch sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.sweep_seconds)
            self._wake.clear()

    async def _verifying(self) -> None:
        while True:
            try:
                await self.verify()
            except (PersistenceError, CryptoError, NoSignatureCheck, OSError) as exc:
                log.warning("audit store not verified this time: %s", exc)
            except Exception:
                log.exception("audit store verification failed")
            await asyncio.sleep(self.config.verify_every_seconds)

    def start(self) -> None:
        if self.config.sweep_enabled:
            self._tasks.append(asyncio.create_task(self._sweeping(), name="audit-watch-gaps"))
        if self.config.verify_enabled and self._verification is not None:
            self._tasks.append(asyncio.create_task(self._verifying(), name="audit-watch-verify"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
