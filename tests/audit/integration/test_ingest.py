"""Audit ingest stores each event once, de-duplicated on CloudEvents source + id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from sqlalchemy import select

from moment_audit.adapters.orm import audit_records, metadata
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.service.ingest import Incoming, ingest_batch
from moment_audit.service.verify import verify_rows
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_contracts.topics import dlq
from moment_persistence.config import DatabaseConfig, Dialect
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head
from moment_persistence.unit_of_work import SqlUnitOfWork
from tests.support.audit_events import access
from tests.support.audit_producers import signed
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish
from tests.support.suite import Suite

DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")


async def _stored(suite: Suite, subject_id: str) -> list[dict[str, object]]:
    async with suite.audit.core.database.sessionmaker() as session:
        rows = await session.execute(
            select(audit_records).where(audit_records.c.subject_id == subject_id)
        )
        return [dict(r) for r in rows.mappings()]


async def test_redelivery_never_doubles_a_record(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    event = Envelope.of(access(subject_id), source="/test/identity", subject=subject_id)
    other_source = Envelope(
        type=event.type, source="/test/consent", id=event.id, data=event.data, subject=subject_id
    )
    await publish(
        suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *signed(event, event, other_source)
    )
    # One key, one partition, in order: once the last is stored, the copy before it was handled,
    # so no settle period is needed to see that it was not stored twice.
    await stored_audit(
        suite, audit_records.c.event_id == event.id, audit_records.c.source == "/test/consent"
    )
    rows = await _stored(suite, subject_id)
    assert sorted(str(r["source"]) for r in rows) == ["/test/consent", "/test/identity"]
    assert rows[0]["fields"] == ["email"]


async def test_a_redelivered_event_takes_no_seq(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    first = Envelope.of(access(subject_id), source="/test/identity", subject=subject_id)
    second = Envelope.of(access(subject_id), source="/test/identity", subject=subject_id)
    # One subject, one key: one partition, in this order.
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *signed(first, first, second))
    # In order on one partition: once `second` is stored, the copy of `first` was handled.
    await stored_audit(suite, audit_records.c.event_id == second.id)
    rows = sorted(await _stored(suite, subject_id), key=lambda r: r["event_id"] == second.id)
    assert [r["event_id"] for r in rows] == [first.id, second.id]
    assert rows[0]["chain_partition"] == rows[1]["chain_partition"] == rows[0]["kafka_partition"]
    assert rows[1]["prev_hash"] == rows[0]["record_hash"]
    assert int(str(rows[1]["seq"])) == int(str(rows[0]["seq"])) + 1


async def publish_together(bootstrap: str, *envelopes: Envelope) -> None:
    """One produce request, so the consumer most likely fetches them in one batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(topics.AUDIT_EVENTS, e.data, key=e.key, headers=e.headers())
            for e in envelopes
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def raw(subject_id: str, data: bytes, type_: str = PersonalDataAccessed.ce_type) -> Envelope:
    return Envelope(type=type_, source="/test/identity", data=data, subject=subject_id)


async def test_a_bad_record_is_dead_lettered_alone_and_the_batch_stored(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    good = [
        Envelope.of(access(subject_id, producer_seq=n), source="/test/identity", subject=subject_id)
        for n in (1, 2, 3)
    ]
    valid = json.loads(good[0].data)
    bad = {
        "schema-violation": raw(subject_id, json.dumps({**valid, "outcome": "maybe"}).encode()),
        "malformed": raw(subject_id, b"{not json"),
        "unknown-type": raw(subject_id, good[0].data, "moment.audit.something-else.v1"),
        # PostgreSQL cannot hold U+0000 in jsonb: the store refuses this one record.
        "handler-rejected": Envelope.of(
            access(subject_id, actor_id="staff\x00"), source="/test/identity", subject=subject_id
        ),
    }
    order = [good[0], *bad.values(), good[1], good[2]]
    await publish_together(suite.kafka.bootstrap_servers, *signed(*order))

    rows = await stored_audit(suite, audit_records.c.subject_id == subject_id, expect=3)
    assert [r["event_id"] for r in rows] == [e.id for e in good]
    assert [r["producer_seq"] for r in rows] == [1, 2, 3]
    seqs = [int(r["seq"]) for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 3)), "a rejected record took no seq"
    ids = {e.id: reason for reason, e in bad.items()}
    dead = await read_topic(
        suite.kafka.bootstrap_servers,
        dlq(topics.AUDIT_EVENTS),
        expect=len(ids),
        where=lambda r: header(r, "ce_id") in ids,
    )
    assert {header(r, "ce_id"): header(r, "dlq_reason") for r in dead} == ids
    refused = next(r for r in dead if header(r, "dlq_reason") == "handler-rejected")
    assert "staff" not in (header(refused, "dlq_detail") or "")


@pytest.fixture(params=DIALECTS)
async def store(
    request: pytest.FixtureRequest, postgres_database_factory: PostgresDatabases, tmp_path: Path
) -> AsyncIterator[Database]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "ingest")
    await upgrade_to_head(url, MIGRATIONS)
    database = Database(DatabaseConfig(url=SecretStr(url)))
    yield database
    await database.dispose()


def incoming(
    partition: int, offset: int, subject_id: str = "subject-1", **changes: Any
) -> Incoming:
    event = access(subject_id, **changes)
    envelope = Envelope.of(event, source="/test/identity", subject=subject_id)
    return Incoming(envelope, event, partition, offset)


async def chain_of(database: Database) -> list[dict[str, Any]]:
    async with database.sessionmaker() as session:
        return [row async for row in SqlAuditStore(session).stream_chained()]


async def test_a_batch_is_chained_once_per_event_whatever_was_stored_before(
    store: Database,
) -> None:
    def uows() -> SqlUnitOfWork:
        return SqlUnitOfWork(store, metadata=metadata)

    first = [incoming(0, n, producer_seq=n + 1) for n in range(4)]
    assert (await ingest_batch(uows, first[:2])).stored == [True, True]
    # A redelivery after a crash: two stored already, one twice in the batch, two new.
    again = [first[0], first[2], first[1], first[2], first[3], incoming(1, 0)]
    ingested = await ingest_batch(uows, again)
    assert ingested.stored == [False, True, False, False, True, True]
    assert ingested.refused == {}

    rows = await chain_of(store)
    assert [(r["chain_partition"], r["seq"]) for r in rows] == [
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 4),
        (1, 1),
    ]
    assert verify_rows(rows, [], lambda _payload, _signature: False).ok
    async with store.sessionmaker() as session:
        query = select(audit_records.c.event_id, audit_records.c.producer_seq).where(
            audit_records.c.chain_partition == 0
        )
        stored = {row.event_id: row.producer_seq for row in await session.execute(query)}
    assert stored == {i.envelope.id: i.event.producer_seq for i in first}


async def test_a_batch_that_was_wholly_stored_changes_nothing(store: Database) -> None:
    def uows() -> SqlUnitOfWork:
        return SqlUnitOfWork(store, metadata=metadata)

    batch = [incoming(2, n) for n in range(3)]
    assert (await ingest_batch(uows, batch)).stored == [True] * 3
    assert (await ingest_batch(uows, batch)).stored == [False] * 3
    async with store.sessionmaker() as session:
        assert [h.seq for h in await SqlAuditStore(session).heads()] == [3]
    assert len(await chain_of(store)) == 3


async def test_a_record_the_database_refuses_does_not_hold_back_its_batch(
    postgres_database_factory: PostgresDatabases,
) -> None:
    url = await postgres_database_factory.create("refuse")
    await upgrade_to_head(url, MIGRATIONS)
    database = Database(DatabaseConfig(url=SecretStr(url)))
    try:
        batch = [incoming(0, 0), incoming(0, 1, actor_id="staff\x00"), incoming(0, 2)]
        ingested = await ingest_batch(lambda: SqlUnitOfWork(database, metadata=metadata), batch)
        assert ingested.stored == [True, False, True]
        assert list(ingested.refused) == [1]
        assert [r["seq"] for r in await chain_of(database)] == [1, 2]
    finally:
        await database.dispose()
