"""The audit service's chained ingest and its verifier, each against a bare baseline.

Ingest calls the service's own `ingest` (dedup, chain under a row lock on the partition head,
detection rules, follow-ups into the outbox) directly, one transaction per record as the consumer
commits, spread over three partitions. Its baseline is a bare Core insert of the same column
values, one per transaction, into a plain table (no chain, no outbox, no rules) on the same
server. Neither side includes consuming from Kafka: the figure is the storage path only.

Verify feeds the stored chains to `ChainVerifier` as `moment-audit verify` does, with the rows
already fetched (no database time is counted) and no checkpoints, so no signature is checked.
Its baseline is hashlib.sha256 over the same canonical-JSON documents, encoded beforehand: the
gap is mostly the pure-Python RFC 8785 encoder the verifier runs for every record.

End to end, `audit_e2e` times a customer's read through identity until the audit record carrying
that read's request id is visible in the audit service's own database (committed, chained),
polled every 2 ms: identity's outbox commit, its relay to audit.events, audit's consume and
ingest. Both services run in this process: identity as the other benchmarks run it, audit
with its default settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import rfc8785
from pydantic import SecretStr
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from benchmarks.audited_read import FIELDS
from benchmarks.context import BenchContext
from benchmarks.customers import customer_tokens
from benchmarks.measure import interleaved_throughput, percentile
from benchmarks.registry import Comparison, Figures, Goal, benchmark
from moment_audit.adapters.orm import audit_records, metadata
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.bootstrap import MIGRATIONS, AuditService, build
from moment_audit.config import AuditSettings
from moment_audit.domain.chain import content_of
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.ingest import ingest
from moment_audit.service.verify import verify_rows
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_telemetry.config import TelemetryConfig

PARTITIONS = 3
WARM_UP = 10
SOURCE = "/identity/bench"
# Verifying a few thousand rows takes well under a second: repeat so the clock has something
# to measure, and take the fastest pass (the least disturbed by the rest of the machine).
VERIFY_PASSES = 3
POLL_S = 0.002
# The first read also waits for audit's consumer group to form.
FIRST_RECORD_TIMEOUT_S = 60.0
RECORD_TIMEOUT_S = 10.0
E2E_READS = 50


class AuditRecordMissing(TimeoutError):
    """An audited read whose record never became visible in the audit database in time."""


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
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


def access_event() -> tuple[Envelope, PersonalDataAccessed]:
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
    )
    return Envelope.of(event, source=SOURCE, subject=subject), event


def _raw_row(index: int) -> dict[str, Any]:
    """The values ingest would store for one event, minus the chain columns."""
    envelope, event = access_event()
    values = {
        "source": envelope.source,
        "event_id": envelope.id,
        **event.model_dump(exclude={"fields"}),
        "fields": list(event.fields),
        "occurred_at": event.occurred_at,
        "kafka_partition": index % PARTITIONS,
        "kafka_offset": index,
        "received_at": datetime.now(UTC),
    }
    columns = (column.name for column in raw_audit_rows.columns)
    return {name: values[name] for name in columns if name in values}


async def _ingest_rates(ctx: BenchContext, database: Database) -> tuple[float, float, int]:
    engine = DetectionEngine()

    async def chained(index: int) -> None:
        envelope, event = access_event()
        async with SqlUnitOfWork(database, metadata=metadata) as uow:
            await ingest(uow, envelope, event, index % PARTITIONS, index, engine)

    async def raw(index: int) -> None:
        row = _raw_row(index)
        async with database.engine.begin() as connection:
            await connection.execute(insert(raw_audit_rows), row)

    async with database.engine.begin() as connection:
        await connection.run_sync(_raw_metadata.create_all)
    count = ctx.scale.audit_records
    # Warm-up offsets follow the measured ones, so no two events share a (partition, offset).
    for index in range(count, count + WARM_UP):
        await chained(index)
        await raw(index)
    ours, bare = await interleaved_throughput(
        [chained, raw], count=count, concurrency=1, budget_s=ctx.scale.budget_s
    )
    if ours.done < count:
        ctx.notes.append(f"audit_ingest: time budget reached after {ours.done} records")
    return ours.per_s, bare.per_s, ours.done + WARM_UP


async def _stored_chain(database: Database) -> list[dict[str, Any]]:
    async with database.sessionmaker() as session:
        return [row async for row in SqlAuditStore(session).stream_chained()]


def _canonical(row: dict[str, Any]) -> bytes:
    """The document `record_hash` hashes for a stored row."""
    document = {
        **content_of(row),
        "seq": row["seq"],
        "prev_hash": row["prev_hash"],
        "partition": row["chain_partition"],
    }
    return rfc8785.dumps(document)


def _fastest_rate(work: Any, items: int) -> float:
    best = float("inf")
    for _ in range(VERIFY_PASSES):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return items / best if best > 0 else 0.0


def _verify_rates(ctx: BenchContext, rows: list[dict[str, Any]]) -> tuple[float, float]:
    report = verify_rows(rows, [], lambda _payload, _signature: False)
    if not report.ok or report.records != len(rows):
        ctx.notes.append(
            f"audit_verify: the benchmark chain did not verify ({report.findings[:3]})"
        )
    documents = [_canonical(row) for row in rows]

    def verify() -> None:
        verify_rows(rows, [], lambda _payload, _signature: False)

    def sha256() -> None:
        for document in documents:
            hashlib.sha256(document).hexdigest()

    return _fastest_rate(verify, len(rows)), _fastest_rate(sha256, len(documents))


@benchmark(
    "audit",
    comparisons=(
        Comparison("audit_ingest_per_s", "raw_ingest_per_s", "audit_ingest_ratio_to_raw"),
        Comparison("verify_records_per_s", "raw_sha256_per_s", "verify_ratio_to_raw_sha256"),
    ),
    goals=(
        Goal(
            "audit_ingest_ratio_to_raw",
            ">=",
            0.7,
            "chaining, dedup and rules cost more than the insert itself",
        ),
        Goal(
            "verify_records_per_s",
            ">=",
            500_000,
            "verifying a large audit store takes too long to run routinely",
        ),
    ),
)
async def audit(ctx: BenchContext) -> Figures:
    url = await ctx.databases.create("bench_audit")
    await upgrade_to_head(url, MIGRATIONS)
    database = Database(DatabaseConfig(url=SecretStr(url)))
    try:
        ingest_rate, raw_rate, stored = await _ingest_rates(ctx, database)
        rows = await _stored_chain(database)
    finally:
        await database.dispose()
    if len(rows) != stored:
        ctx.notes.append(f"audit_verify: {len(rows)} rows stored, {stored} ingested")
    verify_rate, sha_rate = _verify_rates(ctx, rows)
    return {
        "audit_ingest_per_s": ingest_rate,
        "raw_ingest_per_s": raw_rate,
        "verify_records_per_s": verify_rate,
        "raw_sha256_per_s": sha_rate,
        "audit_records_verified": len(rows),
    }


async def _audit_service(ctx: BenchContext, url: str) -> AuditService:
    service = build(
        AuditSettings(
            kafka=ctx.kafka.model_copy(update={"client_id": "audit"}),
            database=DatabaseConfig(url=SecretStr(url)),
            vault=ctx.vault("audit"),
            telemetry=TelemetryConfig(
                service_name="audit", log_format="console", log_level="WARNING"
            ),
        )
    )
    await service.start()
    return service


async def _visible(database: Database, request_id: str, timeout_s: float) -> None:
    query = select(audit_records.c.id).where(audit_records.c.request_id == request_id)
    deadline = time.perf_counter() + timeout_s
    async with database.engine.connect() as connection:
        while (await connection.execute(query)).first() is None:
            if time.perf_counter() > deadline:
                raise AuditRecordMissing(f"no audit record after {timeout_s}s")
            await connection.rollback()
            await asyncio.sleep(POLL_S)


async def _e2e_samples(ctx: BenchContext, audit_db: Database) -> list[float]:
    client = await ctx.identity_client()
    customers = await ctx.customers()
    tokens = await customer_tokens(client, customers)
    reads = min(E2E_READS, ctx.scale.read_latency_samples * 4)
    samples: list[float] = []
    deadline = time.perf_counter() + ctx.scale.budget_s
    for index in range(reads + 1):
        if time.perf_counter() >= deadline:
            ctx.notes.append(f"audit_e2e: time budget reached after {len(samples)} reads")
            break
        customer = customers[index % len(customers)]
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        read = asyncio.create_task(
            client.read(
                tokens[index % len(tokens)], customer.subject_id, FIELDS, request_id=request_id
            )
        )
        timeout = FIRST_RECORD_TIMEOUT_S if index == 0 else RECORD_TIMEOUT_S
        await _visible(audit_db, request_id, timeout)
        elapsed_ms = (time.perf_counter() - started) * 1000
        await read
        # The first read waited for audit to join its consumer group: not a steady figure.
        if index > 0:
            samples.append(elapsed_ms)
    return samples


@benchmark("audit_e2e", timeout_s=150.0)
async def audit_e2e(ctx: BenchContext) -> Figures:
    url = await ctx.databases.create("bench_audit_e2e")
    service = await _audit_service(ctx, url)
    audit_db = Database(DatabaseConfig(url=SecretStr(url)))
    try:
        samples = await _e2e_samples(ctx, audit_db)
    finally:
        await audit_db.dispose()
        await service.stop()
    return {
        "audit_e2e_p50_ms": percentile(samples, 50),
        "audit_e2e_p99_ms": percentile(samples, 99),
        "audit_e2e_reads": len(samples),
    }
