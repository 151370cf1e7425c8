"""Relaying the outbox to Kafka vs producing the same records with bare aiokafka.

The rows are written to the outbox in rounds (untimed); each round is drained with
OutboxRelay.publish_pending (select a batch, send it, wait for every acknowledgement, mark it
sent) and the same records are sent by a bare producer with the same acks and linger, the two in
alternating order from round to round.
"""

from __future__ import annotations

import asyncio
import math
import time

from aiokafka import AIOKafkaProducer

from benchmarks.context import BenchContext
from benchmarks.outbox import TOPIC, event_envelope, migrated_database
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_contracts.envelope import Envelope
from moment_identity.adapters.orm import messaging
from moment_messaging.admin import ensure_topics
from moment_messaging.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from moment_messaging.producer import ResilientProducer
from moment_persistence.database import Database

ROUNDS = 4
INSERT_CHUNK = 1_000


async def _fill_outbox(database: Database, envelopes: list[Envelope]) -> None:
    async with database.sessionmaker() as session, session.begin():
        for start in range(0, len(envelopes), INSERT_CHUNK):
            chunk = envelopes[start : start + INSERT_CHUNK]
            await add_to_outbox(session, messaging, [OutboxMessage(TOPIC.name, e) for e in chunk])


async def _drain(relay: OutboxRelay, rows: int, budget_s: float) -> tuple[int, float]:
    """(rows relayed, seconds taken) for publishing `rows` pending rows."""
    sent = 0
    started = time.perf_counter()
    while sent < rows and time.perf_counter() - started < budget_s:
        sent += await relay.publish_pending()
    return sent, time.perf_counter() - started


async def _produce(producer: AIOKafkaProducer, envelopes: list[Envelope]) -> float:
    """Seconds taken to send every envelope and have each one acknowledged."""
    started = time.perf_counter()
    futures = [
        await producer.send(TOPIC.name, e.data, key=e.key, headers=e.headers()) for e in envelopes
    ]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def _rates(
    ctx: BenchContext, database: Database, raw: AIOKafkaProducer
) -> tuple[float, float]:
    producer = ResilientProducer(ctx.kafka, "bench-relay")
    relay = OutboxRelay(
        database.sessionmaker,
        messaging,
        producer,
        ctx.kafka,
        skip_locked=database.dialect == "postgresql",
    )
    rows, per_round = ctx.scale.relay_rows, math.ceil(ctx.scale.relay_rows / ROUNDS)
    sent, relay_s, produced, produce_s = 0, 0.0, 0, 0.0
    try:
        await producer.send_all([])  # connects, so the timing starts with a ready producer
        for start in range(0, rows, per_round):
            envelopes = [event_envelope() for _ in range(min(per_round, rows - start))]
            await _fill_outbox(database, envelopes)
            relay_first = (start // per_round) % 2 == 0
            if not relay_first:
                produce_s += await _produce(raw, envelopes)
            done, seconds = await _drain(relay, len(envelopes), ctx.scale.budget_s / ROUNDS)
            sent, relay_s = sent + done, relay_s + seconds
            if relay_first:
                produce_s += await _produce(raw, envelopes)
            produced += len(envelopes)
    finally:
        await relay.stop()
    if sent < rows:
        ctx.notes.append(f"outbox_relay: time budget reached after {sent} of {rows} rows")
    return sent / relay_s, produced / produce_s


@benchmark(
    "outbox_relay",
    comparisons=(
        Comparison(
            "outbox_relay_publish_per_s", "raw_produce_per_s", "outbox_relay_ratio_to_raw_produce"
        ),
    ),
    goals=(
        Goal(
            "outbox_relay_ratio_to_raw_produce",
            ">=",
            0.3,
            "reading and marking rows slows publishing more than threefold",
        ),
    ),
)
async def outbox_relay(ctx: BenchContext) -> Figures:
    await ensure_topics(ctx.kafka, [TOPIC])
    database = await migrated_database(ctx, "bench_outbox_relay")
    raw = AIOKafkaProducer(
        bootstrap_servers=ctx.kafka.bootstrap_servers,
        acks="all",
        linger_ms=1,
        max_request_size=ctx.kafka.max_message_bytes * 4,
    )
    try:
        await raw.start()
        ours, baseline = await _rates(ctx, database, raw)
    finally:
        await raw.stop()
        await database.dispose()
    return {"outbox_relay_publish_per_s": ours, "raw_produce_per_s": baseline}
