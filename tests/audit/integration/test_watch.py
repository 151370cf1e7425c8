"""The watch against real PostgreSQL and SQLite stores: holes become gap alerts once their grace
period has passed with no further record, repeats are alerted, verification findings too, and
none of them twice, whether the same watch sweeps again, a new one (a restart) takes over or two
sweep at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from moment_audit.adapters.orm import audit_producer_marks, messaging, metadata
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.config import WatchConfig
from moment_audit.service.ingest import ingest
from moment_audit.service.verification import vault_signatures, verify_store
from moment_audit.service.verify import Report
from moment_audit.service.watch import Watch
from moment_contracts import topics
from moment_contracts.alerts import AlertRaised
from moment_contracts.envelope import Envelope
from moment_persistence.config import DatabaseConfig, Dialect
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head
from moment_persistence.unit_of_work import SqlUnitOfWork
from tests.audit.integration.test_tamper import Store, run_verify
from tests.support.audit_events import access
from tests.support.postgres import PostgresDatabases, fresh_database_url

GRACE = timedelta(seconds=60)
DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")


class Clock:
    """Wall-clock time, moved on at will: records are stamped with the real time as they land."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


class Audit:
    """A migrated audit store, fed through the ingest use case."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.database = Database(DatabaseConfig(url=SecretStr(url)))
        self.clock = Clock()
        self._offset = 0

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.database, metadata=metadata)

    def watch(self, verification: bool = False) -> Watch:
        """A fresh watch: what a restarted service, or a second instance, starts with."""
        check = self.verify if verification else None
        return Watch(self.uow, WatchConfig(), GRACE, check, clock=self.clock)

    async def verify(self) -> Report:
        async with self.database.sessionmaker() as session:
            return await verify_store(session, vault_signatures(None, "unused"))

    async def put(self, source: str, *seqs: int, partition: int = 0) -> list[str]:
        """One record per number, each under a new event id; returns the ids."""
        ids = []
        for seq in seqs:
            body = access(f"subject-{seq}", producer_seq=seq)
            envelope = Envelope.of(body, source=source, subject=body.subject_id)
            self._offset += 1
            async with self.uow() as uow:
                assert await ingest(uow, envelope, body, partition, self._offset)
            ids.append(envelope.id)
        return ids

    async def outboxed(self, rule: str) -> list[AlertRaised]:
        outbox = messaging.outbox
        query = select(outbox.c.payload).where(outbox.c.topic == topics.AUDIT_ALERTS)
        async with self.database.sessionmaker() as session:
            payloads = (await session.scalars(query.order_by(outbox.c.id))).all()
        alerts = [AlertRaised.model_validate(json.loads(p)) for p in payloads]
        return [a for a in alerts if a.rule == rule]

    async def tamper(self, statement: str) -> None:
        """What a DBA could do, around the append-only triggers (as in test_tamper)."""
        dba = Store(self.url)
        try:
            await dba.tamper(statement)
        finally:
            await dba.database.dispose()

    async def mark(self, source: str) -> int | None:
        query = select(audit_producer_marks.c.contiguous).where(
            audit_producer_marks.c.source == source
        )
        async with self.database.sessionmaker() as session:
            return await session.scalar(query)


@pytest.fixture(params=DIALECTS)
async def audit(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[Audit]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "watch")
    await upgrade_to_head(url, MIGRATIONS)
    built = Audit(url)
    yield built
    await built.database.dispose()


def producer() -> str:
    return f"/test/watch-{uuid.uuid4().hex[:12]}"


def details(alerts: list[AlertRaised]) -> list[str]:
    return [a.detail.split(": ", 1)[1] for a in alerts]


async def test_a_hole_becomes_a_gap_once_its_grace_period_has_passed(audit: Audit) -> None:
    source = producer()
    await audit.put(source, 1, 2, 4, 5)
    watch = audit.watch()
    assert await watch.sweep() == []
    audit.clock.ahead = GRACE / 2
    assert await watch.sweep() == []
    audit.clock.ahead = GRACE
    [alert] = await watch.sweep()
    assert details([alert]) == ["expected 3, got 4 (1 missing)"]
    assert (alert.rule, alert.severity, alert.count) == ("gap", "high", 1)
    assert await audit.mark(source) == 5
    assert await watch.sweep() == [], "a gap is reported once"
    assert await audit.outboxed("gap") == [alert]


async def test_a_late_number_within_the_grace_period_is_no_gap(audit: Audit) -> None:
    source = producer()
    await audit.put(source, 1, 3, 5)
    watch = audit.watch()
    assert await watch.sweep() == []
    await audit.put(source, 2, 4)
    audit.clock.ahead = GRACE * 2
    assert await watch.sweep() == []
    assert await audit.mark(source) == 5


async def test_grace_counts_from_the_consumer_back_after_an_outage(audit: Audit) -> None:
    """Audit down longer than the grace period (its consumer away, then rejoining): the missing
    number, waiting in Kafka meanwhile, is no gap if it arrives within grace of the return."""
    late, lost = producer(), producer()
    await audit.put(late, 1, 2, 4)
    await audit.put(lost, 1, 2, 4)
    back: list[datetime | None] = [audit.clock()]
    watch = Watch(
        audit.uow, WatchConfig(), GRACE, None, clock=audit.clock, consuming=lambda: back[0]
    )
    assert await watch.sweep() == []
    # Killed: no consumer, for twice the grace period. Nothing is called overdue meanwhile.
    back[0] = None
    audit.clock.ahead = GRACE * 2
    assert await watch.sweep() == []
    # Back: the grace period starts again from now.
    back[0] = audit.clock()
    assert await watch.sweep() == []
    audit.clock.ahead = GRACE * 2 + GRACE / 2
    assert await watch.sweep() == []
    await audit.put(late, 3)
    audit.clock.ahead = GRACE * 3
    assert details(await watch.sweep()) == ["expected 3, got 4 (1 missing)"]
    assert await audit.mark(late) == 4
    assert await audit.mark(lost) == 4


async def test_a_straggler_after_the_report_is_not_news(audit: Audit) -> None:
    source = producer()
    await audit.put(source, 1, 4)
    audit.clock.ahead = GRACE
    watch = audit.watch()
    assert details(await watch.sweep()) == ["expected 2, got 4 (2 missing)"]
    await audit.put(source, 2, 5)
    audit.clock.ahead = GRACE * 3
    assert await watch.sweep() == []
    assert await audit.mark(source) == 5


async def test_a_restart_neither_forgets_a_hole_nor_reports_it_twice(audit: Audit) -> None:
    source = producer()
    await audit.put(source, 1, 2, 4)
    assert await audit.watch().sweep() == []
    audit.clock.ahead = GRACE
    # A new watch (the service restarted) knows nothing in memory: the store remembers.
    [alert] = await audit.watch().sweep()
    assert details([alert]) == ["expected 3, got 4 (1 missing)"]
    await audit.put(source, 6)
    audit.clock.ahead = GRACE * 3
    [later] = await audit.watch().sweep()
    assert details([later]) == ["expected 5, got 6 (1 missing)"]
    assert await audit.watch().sweep() == []
    assert len(await audit.outboxed("gap")) == 2


async def test_two_instances_sweeping_at_once_report_a_gap_once(audit: Audit) -> None:
    sources = [producer() for _ in range(3)]
    for source in sources:
        await audit.put(source, 1, 3)
    audit.clock.ahead = GRACE
    raised = await asyncio.gather(*(audit.watch().sweep() for _ in range(3)))
    assert sorted(a.alert_id for alerts in raised for a in alerts) == sorted(
        a.alert_id for a in await audit.outboxed("gap")
    )
    assert len(await audit.outboxed("gap")) == len(sources)


async def test_holes_are_found_across_partitions(audit: Audit) -> None:
    # One producer's records reach audit through every partition, keyed by subject.
    source = producer()
    await audit.put(source, 1, 4, partition=0)
    await audit.put(source, 2, 6, partition=1)
    audit.clock.ahead = GRACE
    found = details(await audit.watch().sweep())
    assert found == ["expected 3, got 4 (1 missing)", "expected 5, got 6 (1 missing)"]


async def test_a_new_producer_starts_from_its_first_number(audit: Audit) -> None:
    # Numbers before the first one audit stored predate it, e.g. an upgraded store.
    source = producer()
    await audit.put(source, 5000, 5001)
    audit.clock.ahead = GRACE
    assert await audit.watch().sweep() == []
    assert await audit.mark(source) == 5001


async def test_a_repeated_number_is_one_alert(audit: Audit) -> None:
    source = producer()
    await audit.put(source, 1, 2, 3)
    watch = audit.watch()
    assert await watch.sweep() == []
    await audit.put(source, 2, partition=1)
    [alert] = await watch.sweep()
    assert (alert.rule, alert.severity, alert.count) == ("gap", "medium", 2)
    assert details([alert]) == ["2 repeated (2 records)"]
    await audit.put(source, 2)
    assert await audit.watch().sweep() == [], "the same number again is the same alert"
    assert len(await audit.outboxed("gap")) == 1


async def test_verification_findings_are_alerted_once_each(audit: Audit) -> None:
    await audit.put(producer(), 1, 2, 3, 4)
    watch = audit.watch(verification=True)
    assert await watch.verify() == []
    await audit.tamper("DELETE FROM audit_records WHERE chain_partition = 0 AND seq = 2")
    [alert] = await watch.verify()
    assert (alert.rule, alert.severity) == ("verification-failed", "high")
    assert alert.detail == "audit verification failed: partition 0 seq 2: DELETED"
    assert await audit.watch(verification=True).verify() == [], "a later run raises no copy"
    await audit.tamper("DELETE FROM audit_records WHERE chain_partition = 0 AND seq = 3")
    assert details(await watch.verify()) == ["partition 0 seq 3: DELETED"]
    assert len(await audit.outboxed("verification-failed")) == 2


async def test_verify_alert_outboxes_each_finding_once(audit: Audit) -> None:
    await audit.put(producer(), 1, 2, 3)
    await audit.tamper("DELETE FROM audit_records WHERE chain_partition = 0 AND seq = 2")
    env = {
        "MOMENT_AUDIT_DATABASE__URL": audit.url,
        "MOMENT_AUDIT_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    for _ in range(2):
        # No age limit: this store was never checkpointed, and that is not what is tested.
        code, out = await run_verify(env, "--alert", "--max-age", "0")
        assert (code, out.splitlines()[0]) == (1, "partition 0 seq 2: DELETED")
        [alert] = await audit.outboxed("verification-failed")
        assert alert.detail == "audit verification failed: partition 0 seq 2: DELETED"
    # The service's watch finds the same finding under the same id: nothing new to raise.
    assert await audit.watch(verification=True).verify() == []
