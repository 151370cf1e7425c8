"""`moment-audit run` as a real process, on its own Tansu, with PostgreSQL or SQLite: a hole found
by the watch survives a restart of the service and is alerted once on audit.alerts, and a DBA's
deletion of a record leads to one `verification-failed` alert there.

The service gets a Tansu of its own (`private_broker`): the session broker's consumer group
"audit" belongs to the in-process suite.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from moment_audit.adapters.orm import audit_producer_marks, audit_records, messaging
from moment_audit.bootstrap import MIGRATIONS
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultConfig
from moment_devstack.processes import LOOPBACK, ManagedProcess
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_persistence.config import Dialect
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_kill_restart import AuditProcess, audit_environment
from tests.audit.integration.test_tamper import Store
from tests.support.audit_events import access
from tests.support.audit_producers import sign
from tests.support.kafka import read_topic
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish
from tests.support.waiting import DEADLINE_S, eventually

pytestmark = pytest.mark.slow

DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")
# Long enough for the test to stop the service before a hole is overdue, on a busy machine too.
GRACE_S = 20.0
SWEEP_S = 0.2
VERIFY_S = 1.0
POLL_S = 0.05
STORED_TIMEOUT_S = DEADLINE_S
ALERT_TIMEOUT_S = DEADLINE_S
# A repeated alert would come at a later sweep or verification: several pass in this period.
SETTLE_S = 25 * SWEEP_S


@dataclass
class Running:
    bootstrap: str
    url: str
    engine: AsyncEngine
    service: AuditProcess

    async def stored(self, source: str) -> int:
        query = select(func.count()).where(audit_records.c.source == source)
        async with self.engine.connect() as connection:
            return int(await connection.scalar(query) or 0)

    async def mark(self, source: str, at_least: int) -> bool:
        query = select(audit_producer_marks.c.contiguous).where(
            audit_producer_marks.c.source == source
        )
        async with self.engine.connect() as connection:
            return int(await connection.scalar(query) or 0) >= at_least

    async def outboxed_gaps(self, name: str) -> list[dict[str, object]]:
        """Gap alerts the service raised for `name`, from its outbox (published or not)."""
        outbox = messaging.outbox
        query = select(outbox.c.payload).where(outbox.c.topic == topics.AUDIT_ALERTS)
        async with self.engine.connect() as connection:
            alerts = [json.loads(p) for p in (await connection.scalars(query)).all()]
        return [a for a in alerts if gap_of(name)(a)]

    async def wait_stored(self, source: str, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + STORED_TIMEOUT_S
        while await self.stored(source) < count:
            if not self.service.running():
                pytest.fail(f"moment-audit exited:\n{self.service.log()}")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"records not stored in {STORED_TIMEOUT_S:.0f}s:\n{self.service.log()}")
            await asyncio.sleep(POLL_S)

    async def alerts(
        self, matches: Callable[[dict[str, object]], bool], timeout_s: float = ALERT_TIMEOUT_S
    ) -> list[dict[str, object]]:
        def where(record: ConsumerRecord[bytes, bytes]) -> bool:
            return matches(json.loads(record.value or b"{}"))

        found = await read_topic(
            self.bootstrap, topics.AUDIT_ALERTS, timeout_s=timeout_s, where=where
        )
        return [json.loads(r.value or b"{}") for r in found]


@pytest.fixture(params=DIALECTS)
async def running(
    request: pytest.FixtureRequest,
    private_broker: ManagedProcess,
    postgres_database_factory: PostgresDatabases,
    vault_config_factory: Callable[[str], VaultConfig],
    tmp_path: Path,
) -> AsyncIterator[Running]:
    bootstrap = f"{LOOPBACK}:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "watch")
    await upgrade_to_head(url, MIGRATIONS)
    env = audit_environment(bootstrap, url, vault_config_factory("audit")) | {
        "MOMENT_AUDIT_RULES__GAP_GRACE_S": str(GRACE_S),
        "MOMENT_AUDIT_WATCH__SWEEP_SECONDS": str(SWEEP_S),
        "MOMENT_AUDIT_WATCH__VERIFY_EVERY_SECONDS": str(VERIFY_S),
    }
    service = AuditProcess(env, tmp_path / "audit.log")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        service.start()
        await service.wait_ready(starts=1)
        yield Running(bootstrap, url, engine, service)
    finally:
        service.stop()
        await engine.dispose()


def source_of(name: str) -> str:
    return "/" + name.replace(":", "/")


def numbered(name: str, subject_id: str, *seqs: int) -> list[Envelope]:
    # One subject, so one partition: the records reach audit in the order they were sent.
    return [
        sign(
            Envelope.of(
                access(subject_id, producer_seq=seq), source=source_of(name), subject=subject_id
            )
        )
        for seq in seqs
    ]


def gap_of(name: str) -> Callable[[dict[str, object]], bool]:
    return lambda alert: alert.get("rule") == "gap" and name in str(alert.get("detail"))


async def test_a_gap_survives_a_restart_and_is_alerted_once(running: Running) -> None:
    subject = str(uuid.uuid4())
    before, pending = (f"test:restart-{uuid.uuid4().hex[:12]}" for _ in range(2))
    # A hole the first process alerts on, on its timer: nothing is sent after number 4.
    await publish(running.bootstrap, topics.AUDIT_EVENTS, *numbered(before, subject, 1, 2, 4))
    [first] = await running.alerts(gap_of(before))
    assert str(first["detail"]).endswith("expected 3, got 4 (1 missing)")

    # A hole still within its grace period when the process dies.
    await publish(running.bootstrap, topics.AUDIT_EVENTS, *numbered(pending, subject, 1, 2, 4))
    stored_at = asyncio.get_running_loop().time()
    await running.wait_stored(source_of(pending), 3)
    running.service.kill()
    assert asyncio.get_running_loop().time() - stored_at < GRACE_S, "too slow to test a restart"
    assert await running.alerts(gap_of(pending), timeout_s=0.5) == []

    # The new process remembers nothing, and no record arrives: the store has the hole.
    running.service.start()
    await running.service.wait_ready(starts=2)
    [second] = await running.alerts(gap_of(pending))
    assert str(second["detail"]).endswith("expected 3, got 4 (1 missing)")
    await asyncio.sleep(SETTLE_S)
    assert len(await running.alerts(gap_of(before), timeout_s=1)) == 1, "alerted again"
    assert len(await running.alerts(gap_of(pending), timeout_s=1)) == 1, "alerted twice"


async def test_a_number_delayed_by_an_outage_longer_than_the_grace_is_no_gap(
    running: Running,
) -> None:
    """The issue's case: audit down longer than the grace period while the missing number
    waited in Kafka. Its grace counts from when the consumer was back, not from when audit
    stored the number above the hole, so the restart does not call it a gap."""
    name = f"test:outage-{uuid.uuid4().hex[:12]}"
    source = source_of(name)
    subject = str(uuid.uuid4())
    await publish(running.bootstrap, topics.AUDIT_EVENTS, *numbered(name, subject, 1, 2, 4))
    await running.wait_stored(source, 3)
    running.service.kill()
    await asyncio.sleep(GRACE_S + 1)
    await publish(running.bootstrap, topics.AUDIT_EVENTS, *numbered(name, subject, 3))

    running.service.start()
    await running.service.wait_ready(starts=2)
    await running.wait_stored(source, 4)
    # Once the watch's mark passed 4 it will never look at this hole again: what it raised by
    # then is in the outbox, published or not, so no settle period is needed.
    await eventually(lambda: running.mark(source, 4), what="the watch settled past 4")
    assert await running.outboxed_gaps(name) == []


async def test_a_deleted_record_raises_verification_failed(running: Running) -> None:
    name = f"test:verify-{uuid.uuid4().hex[:12]}"
    source = source_of(name)
    subject = str(uuid.uuid4())
    await publish(running.bootstrap, topics.AUDIT_EVENTS, *numbered(name, subject, 1, 2, 3))
    await running.wait_stored(source, 3)
    query = select(audit_records.c.chain_partition, audit_records.c.seq).where(
        audit_records.c.source == source, audit_records.c.producer_seq == 2
    )
    async with running.engine.connect() as connection:
        partition, seq = (await connection.execute(query)).one()
    dba = Store(running.url)
    try:
        await dba.tamper(
            f"DELETE FROM audit_records WHERE chain_partition = {partition} AND seq = {seq}"
        )
    finally:
        await dba.database.dispose()

    finding = f"partition {partition} seq {seq}: DELETED"

    def deleted(alert: dict[str, object]) -> bool:
        return alert.get("rule") == "verification-failed" and str(alert.get("detail")).endswith(
            finding
        )

    [alert] = await running.alerts(deleted)
    assert alert["severity"] == "high"
    await asyncio.sleep(5 * VERIFY_S)
    assert len(await running.alerts(deleted, timeout_s=1)) == 1, "each verification re-alerted"
