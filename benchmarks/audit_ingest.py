"""The ingest half of the audit benchmark: the audit service's consumer path against a bare one.

See benchmarks/audit.py for what each figure includes. Both sides read the same events, produced
to audit.events before either consumes, and are timed from the first event stored to the last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)

from benchmarks.context import FETCH_MAX_WAIT_MS, BenchContext
from moment_audit.adapters.kafka import INGEST_BATCH, register_handlers
from moment_audit.adapters.orm import audit_records, metadata
from moment_audit.config import ProducersConfig
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.producers import ForgeryAlarm, ProducerGate, Producers
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_crypto.keysets import KEY_BYTES, VersionedKeys
from moment_crypto.producer_mac import ProducerSigner
from moment_crypto.record_mac import RecordMacs
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import DeadLetterPolicy
from moment_messaging.runtime import build_broker
from moment_persistence.database import Database
from moment_persistence.unit_of_work import SqlUnitOfWork

# Events ingested per side: Scale.audit_records times this (20,000 at full scale).
EVENTS_PER_RECORD_SCALE = 10
SOURCE = "/identity/bench"
SENTINEL_SOURCE = "/identity/bench-sentinel"
# The benchmark's producer, owning both sources: audit checks its MAC on every event, as it does
# identity's (the key is made here, not read from Vault: no Vault call is on the ingest path).
PRODUCER = "bench"
PRODUCERS = ProducersConfig(known={"/identity/": PRODUCER})
KEYS = VersionedKeys(current="v1", keys={"v1": os.urandom(KEY_BYTES)})
# The service's own MAC over each stored record, as the running service adds it.
RECORD_MACS = RecordMacs(VersionedKeys(current="v1", keys={"v1": os.urandom(KEY_BYTES)}))
# Polling the stored events' highest id: short against a run of a second or more.
STORED_POLL_S = 0.01
# The first poll also waits for the consumer group to form (seconds on Tansu).
JOIN_TIMEOUT_S = 60.0
INGEST_TIMEOUT_S = 120.0


class IngestStalled(TimeoutError):
    """The produced events were not all stored in time."""


_raw_metadata = MetaData()
raw_audit_rows = Table(
    "bench_raw_audit_rows",
    _raw_metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("source", String(256), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("actor_role", String(64), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("purpose", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("source_ref", String(80), nullable=True),
    Column("producer_seq", BigInteger, nullable=True),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


def access_event(producer_seq: int | None = None, source: str = SOURCE) -> Envelope:
    """A made-up read of made-up fields: no real person's data."""
    subject = str(uuid.uuid4())
    event = PersonalDataAccessed(
        action="read",
        actor_id=subject,
        actor_role="customer",
        subject_id=subject,
        fields=("name", "email"),
        purpose="self-service",
        outcome="success",
        occurred_at=datetime.now(UTC),
        request_id=str(uuid.uuid4()),
        trace_id=uuid.uuid4().hex,
        producer_seq=producer_seq,
    )
    envelope = Envelope.of(event, source=source, subject=subject)
    mac = ProducerSigner(KEYS).headers_for(envelope.headers(), envelope.data)
    return dataclasses.replace(envelope, extra=mac)


async def _produce(kafka: KafkaConfig, envelopes: list[Envelope], partition: bool = False) -> None:
    """`partition`: the i-th envelope to partition i (sentinels), else by key."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topics.AUDIT_EVENTS,
                e.data,
                key=e.key,
                headers=e.headers(),
                partition=index if partition else None,
            )
            for index, e in enumerate(envelopes)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _max_id(database: Database, table: Table) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(select(func.max(table.c.id))) or 0)


async def _stored_rate(database: Database, table: Table, base: int, count: int) -> float:
    """Events stored per second from the first stored one to the last, by the table's ids.

    When one poll of the table sees none stored and the next sees all (a small run), the rate
    is over the time between those two polls: a lower bound.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_TIMEOUT_S + INGEST_TIMEOUT_S
    first: tuple[float, int] | None = None
    last_empty = time.perf_counter()
    highest_id = select(func.max(table.c.id))
    # One connection for every poll: the poller shares this process's CPU with the consumer.
    async with database.engine.connect() as connection:
        while True:
            highest = int(await connection.scalar(highest_id) or 0)
            await connection.rollback()
            now = time.perf_counter()
            if first is None:
                first = (now, highest) if highest > base else None
                last_empty = now if first is None else last_empty
            if first is not None and highest >= base + count:
                since, seen = (last_empty, base) if first[1] >= base + count else first
                return (base + count - seen) / (now - since)
            if loop.time() > deadline:
                raise IngestStalled(f"{highest - base} of {count} events stored in time")
            await asyncio.sleep(STORED_POLL_S)


def _consumer_config(ctx: BenchContext) -> KafkaConfig:
    return ctx.kafka.model_copy(
        update={"client_id": "audit", "fetch_max_wait_ms": FETCH_MAX_WAIT_MS}
    )


async def _audit_consumer(config: KafkaConfig, database: Database) -> KafkaBroker:
    """The audit service's consumer of audit.events, as `register_handlers` wires it."""
    broker, _ = build_broker(
        config, source="/moment/audit", policy=DeadLetterPolicy(config, "audit")
    )

    def uows() -> SqlUnitOfWork:
        return SqlUnitOfWork(database, metadata=metadata)

    gate = ProducerGate(
        Producers(PRODUCERS, None, {PRODUCER: KEYS}),
        ForgeryAlarm(uows, PRODUCERS.alert_window_s),
    )
    register_handlers(
        broker, config, uows, DetectionEngine(), gate=lambda: gate, record_macs=lambda: RECORD_MACS
    )
    await broker.start()
    return broker


async def _end_offsets(kafka: KafkaConfig) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topics.AUDIT_EVENTS, p)
            for p in sorted(consumer.partitions_for_topic(topics.AUDIT_EVENTS) or ())
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _drain(config: KafkaConfig, database: Database) -> None:
    """Consume what earlier benchmarks left on audit.events, then leave the group."""
    partitions = len(await _end_offsets(config))
    broker = await _audit_consumer(config, database)
    try:
        await _produce(
            config, [access_event(source=SENTINEL_SOURCE) for _ in range(partitions)], True
        )
        sentinels = select(func.count()).where(audit_records.c.source == SENTINEL_SOURCE)
        deadline = time.perf_counter() + JOIN_TIMEOUT_S + INGEST_TIMEOUT_S
        while time.perf_counter() < deadline:
            async with database.engine.connect() as connection:
                if await connection.scalar(sentinels) == partitions:
                    return
            await asyncio.sleep(0.05)
        raise IngestStalled("audit.events was not drained in time")
    finally:
        await broker.stop()


async def _audit_ingest_rate(ctx: BenchContext, database: Database, count: int) -> float:
    config = _consumer_config(ctx)
    await _drain(config, database)
    base = await _max_id(database, audit_records)
    await _produce(config, [access_event(n + 1) for n in range(count)])
    broker = await _audit_consumer(config, database)
    try:
        return await _stored_rate(database, audit_records, base, count)
    finally:
        await broker.stop()


def _raw_row(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    headers = {name: value.decode() for name, value in record.headers}
    body = json.loads(record.value or b"{}")
    return {
        **body,
        "source": headers["ce_source"],
        "event_id": headers["ce_id"],
        "occurred_at": datetime.fromisoformat(body["occurred_at"]),
        "kafka_partition": record.partition,
        "kafka_offset": record.offset,
        "received_at": datetime.now(UTC),
    }


async def _raw_consume(
    kafka: KafkaConfig, database: Database, start: dict[TopicPartition, int], count: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)
        done = 0
        while done < count:
            batch = await consumer.getmany(timeout_ms=FETCH_MAX_WAIT_MS, max_records=INGEST_BATCH)
            rows = [_raw_row(r) for records in batch.values() for r in records]
            if rows:
                async with database.engine.begin() as connection:
                    await connection.execute(insert(raw_audit_rows), rows)
                done += len(rows)
    finally:
        await consumer.stop()


async def _raw_ingest_rate(
    ctx: BenchContext, database: Database, start: dict[TopicPartition, int], count: int
) -> float:
    async with database.engine.begin() as connection:
        await connection.run_sync(_raw_metadata.create_all)
    consume = asyncio.create_task(_raw_consume(ctx.kafka, database, start, count))
    try:
        return await _stored_rate(database, raw_audit_rows, 0, count)
    finally:
        await consume


async def ingest_rates(ctx: BenchContext, database: Database, count: int) -> tuple[float, float]:
    """(audit_ingest_per_s, raw_ingest_per_s) over the same `count` events."""
    start = await _end_offsets(ctx.kafka)
    audit = await _audit_ingest_rate(ctx, database, count)
    raw = await _raw_ingest_rate(ctx, database, start, count)
    return audit, raw
