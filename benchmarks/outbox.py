"""Writing to the transactional outbox vs a bare insert.

Writes go through IdentityUnitOfWork (add_to_outbox, one event per transaction, as a use case
commits) against a bare Core insert of rows of the same size, one per transaction, into a table
without the outbox's indexes, in the same database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
)

from benchmarks.context import BenchContext
from benchmarks.measure import interleaved_throughput
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_contracts.envelope import Envelope
from moment_contracts.identity import UserRegistered
from moment_contracts.topics import TopicSpec
from moment_identity.bootstrap import MIGRATIONS
from moment_identity.service.unit_of_work import SOURCE, IdentityUnitOfWork
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head

TOPIC = TopicSpec("bench.outbox", partitions=3)
WARM_UP = 10

_raw_metadata = MetaData()
raw_rows = Table(
    "bench_raw_rows",
    _raw_metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("topic", String(249), nullable=False),
    Column("message_key", LargeBinary, nullable=True),
    Column("headers", JSON, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def _event() -> tuple[UserRegistered, str]:
    subject = str(uuid.uuid4())
    body = UserRegistered(
        subject_id=subject, status="active", locale="ar", registered_at=datetime.now(UTC)
    )
    return body, subject


def event_envelope() -> Envelope:
    body, subject = _event()
    return Envelope.of(body, source=SOURCE, subject=subject)


async def migrated_database(ctx: BenchContext, prefix: str) -> Database:
    url = await ctx.databases.create(prefix)
    await upgrade_to_head(url, MIGRATIONS)
    return Database(DatabaseConfig(url=SecretStr(url)))


async def _write_rates(ctx: BenchContext, database: Database) -> tuple[float, float]:
    count, budget = ctx.scale.outbox_rows, ctx.scale.budget_s

    async def outbox_write(_index: int) -> None:
        body, subject = _event()
        async with IdentityUnitOfWork(database) as uow:
            uow.publish(TOPIC.name, body, subject)
            await uow.commit()

    template = event_envelope()
    row: dict[str, Any] = {
        "topic": TOPIC.name,
        "message_key": template.key,
        "headers": [[k, v.decode()] for k, v in template.headers()],
        "payload": template.data,
        "created_at": template.time,
    }

    async def raw_insert(_index: int) -> None:
        async with database.engine.begin() as connection:
            await connection.execute(insert(raw_rows), row)

    async with database.engine.begin() as connection:
        await connection.run_sync(_raw_metadata.create_all)
    for index in range(WARM_UP):
        await outbox_write(index)
        await raw_insert(index)
    ours, raw = await interleaved_throughput(
        [outbox_write, raw_insert], count=count, concurrency=1, budget_s=budget
    )
    return ours.per_s, raw.per_s


@benchmark(
    "outbox_write",
    comparisons=(
        Comparison("outbox_write_per_s", "raw_insert_per_s", "outbox_write_ratio_to_raw_insert"),
    ),
    goals=(
        Goal(
            "outbox_write_ratio_to_raw_insert",
            ">=",
            0.5,
            "the unit of work costs more than the insert itself",
        ),
    ),
)
async def outbox_write(ctx: BenchContext) -> Figures:
    database = await migrated_database(ctx, "bench_outbox_write")
    try:
        ours, raw = await _write_rates(ctx, database)
    finally:
        await database.dispose()
    return {"outbox_write_per_s": ours, "raw_insert_per_s": raw}
