"""Audit ingest stores each event once, de-duplicated on CloudEvents source + id."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from moment_audit.adapters.orm import audit_records
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from tests.support.audit_events import access
from tests.support.produce import publish
from tests.support.suite import Suite


async def _stored(suite: Suite, subject_id: str) -> list[dict[str, object]]:
    async with suite.audit.core.database.sessionmaker() as session:
        rows = await session.execute(
            select(audit_records).where(audit_records.c.subject_id == subject_id)
        )
        return [dict(r) for r in rows.mappings()]


async def test_redelivery_never_doubles_a_record(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    event = Envelope.of(access(subject_id), source="/moment/identity", subject=subject_id)
    other_source = Envelope(
        type=event.type, source="/moment/consent", id=event.id, data=event.data, subject=subject_id
    )
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, event, event, other_source)
    for _ in range(200):
        if len(await _stored(suite, subject_id)) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    rows = await _stored(suite, subject_id)
    assert sorted(str(r["source"]) for r in rows) == ["/moment/consent", "/moment/identity"]
    assert rows[0]["fields"] == ["email"]


async def test_a_redelivered_event_takes_no_seq(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    first = Envelope.of(access(subject_id), source="/moment/identity", subject=subject_id)
    second = Envelope.of(access(subject_id), source="/moment/identity", subject=subject_id)
    # One subject, one key: one partition, in this order.
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, first, first, second)
    for _ in range(200):
        if len(await _stored(suite, subject_id)) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    rows = sorted(await _stored(suite, subject_id), key=lambda r: r["event_id"] == second.id)
    assert [r["event_id"] for r in rows] == [first.id, second.id]
    assert rows[0]["chain_partition"] == rows[1]["chain_partition"] == rows[0]["kafka_partition"]
    assert rows[1]["prev_hash"] == rows[0]["record_hash"]
    assert int(str(rows[1]["seq"])) == int(str(rows[0]["seq"])) + 1
