"""Transactional outbox: events become rows in the same transaction as the state change.

A relay publishes the rows, keyed by subject, and marks them sent only after the broker acknowledged
them. Delivery is at-least-once: a crash between the acknowledgement and the mark re-sends a row,
which the idempotent consumers absorb.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from sqlalchemy import ARRAY, DateTime, LargeBinary, Text, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from moment_contracts.envelope import Envelope
from moment_messaging.config import KafkaConfig
from moment_messaging.producer import OutgoingRecord, PublishError, ResilientProducer
from moment_messaging.tables import MessagingTables
from moment_telemetry.metrics import Metrics

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("moment.outbox")


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    envelope: Envelope


def current_trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# PostgreSQL's writer: five arrays, so one prepared statement serves every batch size (a
# multi-row VALUES is a new statement, prepared and planned again, for each row count).
_POSTGRESQL_INSERT = """
INSERT INTO {table} (event_id, topic, message_key, headers, payload, created_at)
SELECT e, t, k, CAST(h AS json), p, CAST(:created_at AS timestamptz)
FROM unnest(CAST(:event_ids AS text[]), CAST(:topics AS text[]), CAST(:keys AS bytea[]),
            CAST(:headers AS text[]), CAST(:payloads AS bytea[])) AS u(e, t, k, h, p)
"""
_ARRAYS = (
    bindparam("event_ids", type_=ARRAY(Text)),
    bindparam("topics", type_=ARRAY(Text)),
    bindparam("keys", type_=ARRAY(LargeBinary)),
    bindparam("headers", type_=ARRAY(Text)),
    bindparam("payloads", type_=ARRAY(LargeBinary)),
    bindparam("created_at", type_=DateTime(timezone=True)),
)


def _row_headers(envelope: Envelope, trace_headers: dict[str, str]) -> list[list[str]]:
    return [[k, v.decode()] for k, v in envelope.headers()] + [
        [k, v] for k, v in trace_headers.items() if k not in envelope.extra
    ]


async def add_to_outbox(
    session: AsyncSession, tables: MessagingTables, messages: Sequence[OutboxMessage]
) -> None:
    """Write messages inside the caller's transaction; the current trace travels with each row."""
    if not messages:
        return
    trace_headers = current_trace_headers()
    now = datetime.now(UTC)
    table = tables.outbox
    if session.get_bind().dialect.name == "postgresql":
        # The JSON column's own encoding (SQLAlchemy's default json.dumps), as text.
        statement = text(_POSTGRESQL_INSERT.format(table=table.name)).bindparams(*_ARRAYS)
        arrays = {
            "event_ids": [m.envelope.id for m in messages],
            "topics": [m.topic for m in messages],
            "keys": [m.envelope.key for m in messages],
            "headers": [json.dumps(_row_headers(m.envelope, trace_headers)) for m in messages],
            "payloads": [m.envelope.data for m in messages],
            "created_at": now,
        }
        await session.execute(statement, arrays)
        return
    rows = [
        {
            "event_id": m.envelope.id,
            "topic": m.topic,
            "message_key": m.envelope.key,
            "headers": _row_headers(m.envelope, trace_headers),
            "payload": m.envelope.data,
            "created_at": now,
        }
        for m in messages
    ]
    await session.execute(insert(table), rows)


class OutboxRelay:
    """Publishes unsent outbox rows. `notify()` after a commit keeps latency low; polling catches
    the rest.

    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tables: MessagingTables,
        producer: ResilientProducer,
        config: KafkaConfig,
        *,
        skip_locked: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._table = tables.outbox
        self._producer = producer
        self._config = config
        self._skip_locked = skip_locked
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._producer.stop()

    async def _run(self) -> None:
        backoff = self._config.outbox_poll_interval_ms / 1000
        while True:
            try:
                sent = await self.publish_pending()
                backoff = self._config.outbox_poll_interval_ms / 1000
            except PublishError as exc:
                log.warning("outbox relay cannot publish yet: %s", exc)
                backoff = min(backoff * 2, self._config.outbox_max_backoff_ms / 1000)
                sent = 0
            if sent >= self._config.outbox_batch_size:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)

    async def publish_pending(self) -> int:
        """One pass: publish a batch of unsent rows and mark them. Returns how many were sent."""
        async with self._sessions() as session, session.begin():
            query = (
                select(self._table)
                .where(self._table.c.published_at.is_(None))
                .order_by(self._table.c.id)
                .limit(self._config.outbox_batch_size)
            )
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).mappings().all()
            if not rows:
                return 0
            ids = [row["id"] for row in rows]
            try:
                await self._producer.send_all([self._record(row) for row in rows])
            except PublishError as failure:
                error: PublishError | None = failure
            else:
                error = None
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id.in_(ids))
                    .values(published_at=datetime.now(UTC), attempts=self._table.c.attempts + 1)
                )
        if error is not None:
            await self._note_failure(ids, error)
            raise error
        self.published += len(rows)
        self._record_metrics(rows)
        return len(rows)

    def _record_metrics(self, rows: Sequence[Any]) -> None:
        if self._metrics is None:
            return
        now = datetime.now(UTC)
        for row in rows:
            created = row["created_at"]
            # SQLite hands back naive datetimes; every timestamp we write is UTC.
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            attributes = {"topic": row["topic"]}
            self._metrics.outbox_published.add(1, attributes)
            self._metrics.outbox_lag_seconds.record((now - created).total_seconds(), attributes)

    async def _note_failure(self, ids: list[int], exc: Exception) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(self._table)
                .where(self._table.c.id.in_(ids))
                .values(attempts=self._table.c.attempts + 1, last_error=str(exc)[:500])
            )

    def _record(self, row: Any) -> OutgoingRecord:
        headers = dict(row["headers"])
        parent = propagate.extract(headers)
        with _tracer.start_as_current_span(
            f"{row['topic']} publish", context=parent, kind=SpanKind.PRODUCER
        ) as span:
            span.set_attribute("messaging.system", "kafka")
            span.set_attribute("messaging.destination.name", row["topic"])
            span.set_attribute("messaging.message.id", row["event_id"])
            propagate.inject(headers)
        return OutgoingRecord(
            topic=row["topic"],
            value=row["payload"],
            key=row["message_key"],
            headers=[(name, value.encode()) for name, value in headers.items()],
        )
