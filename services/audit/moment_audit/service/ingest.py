"""Ingest audit events: store each once, keyed by its CloudEvents source and id, and chain it.

A poll's worth of events is stored in one transaction per partition: one lock on the chain head,
one multi-row insert of records, one of outbox rows, one head update. De-duplication (within the
batch and against the store) comes before sequencing, so a redelivered event takes no seq. The
caller commits the Kafka offsets only after every partition's transaction committed.

An event the database refuses (a value it cannot store) must not hold back the rest of its
batch: the batch is then stored one event at a time, and the refused events are returned for
the dead-letter topic. An unavailable database is not a refusal: that error propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from moment_audit.adapters.orm import messaging
from moment_audit.adapters.repositories import Key, SqlAuditStore, StoredBefore
from moment_audit.domain.chain import CONTENT_FIELDS
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.streams import follow_ups
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_crypto.record_mac import RecordMacs
from moment_messaging.outbox import add_to_outbox
from moment_persistence.errors import IntegrityViolation, is_unavailable
from moment_persistence.unit_of_work import SqlUnitOfWork

# The hashed content that comes from the event body (source and event_id come from the envelope).
EVENT_FIELDS = tuple(name for name in CONTENT_FIELDS if name not in {"source", "event_id"})


@dataclass(frozen=True)
class Incoming:
    """One consumed audit event and where it was read from."""

    envelope: Envelope
    event: PersonalDataAccessed
    partition: int
    offset: int

    @property
    def key(self) -> Key:
        return self.envelope.source, self.envelope.id

    def record(self) -> dict[str, Any]:
        return {
            "source": self.envelope.source,
            "event_id": self.envelope.id,
            **{name: getattr(self.event, name) for name in EVENT_FIELDS},
            "kafka_partition": self.partition,
            "kafka_offset": self.offset,
        }


@dataclass
class Ingested:
    """Per incoming event, in order: stored (False for a duplicate), or refused, with why."""

    stored: list[bool]
    refused: dict[int, Exception] = field(default_factory=dict)


async def store_batch(
    uow: SqlUnitOfWork,
    items: Sequence[Incoming],
    engine: DetectionEngine | None = None,
    skip: frozenset[Key] = frozenset(),
    macs: RecordMacs | None = None,
) -> list[bool]:
    """Store one partition's `items` (but those in `skip`) and their follow-ups, and commit;
    with `macs`, each record carries the service's MAC (moment_crypto.record_mac)."""
    wanted = [i for i, item in enumerate(items) if item.key not in skip]
    flags = await SqlAuditStore(uow.session, macs).append_many(
        [items[i].record() for i in wanted],
        items[0].partition,
        received_at=datetime.now(UTC),
    )
    stored = [False] * len(items)
    for index, flag in zip(wanted, flags, strict=True):
        stored[index] = flag
    messages = [
        message
        for item, flag in zip(items, stored, strict=True)
        if flag
        for message in follow_ups(item.envelope, item.event, engine)
    ]
    await add_to_outbox(uow.session, messaging, messages)
    await uow.commit()
    return stored


async def ingest(
    uow: SqlUnitOfWork,
    envelope: Envelope,
    event: PersonalDataAccessed,
    partition: int,
    offset: int,
    engine: DetectionEngine | None = None,
    macs: RecordMacs | None = None,
) -> bool:
    """Store a single event in `uow` and commit; False for a duplicate."""
    items = [Incoming(envelope, event, partition, offset)]
    return (await store_batch(uow, items, engine, macs=macs))[0]


async def _ingest_partition(
    uow_factory: Callable[[], SqlUnitOfWork],
    items: Sequence[Incoming],
    engine: DetectionEngine | None,
    macs: RecordMacs | None = None,
) -> list[bool]:
    skip: frozenset[Key] = frozenset()
    # Each retry skips at least one more stored record, so this ends.
    while True:
        try:
            async with uow_factory() as uow:
                return await store_batch(uow, items, engine, skip, macs)
        except StoredBefore as exc:
            skip |= exc.keys


def _refusal(exc: Exception) -> bool:
    """A value the database will not store, as opposed to a database it cannot reach."""
    return isinstance(exc, IntegrityViolation) or (
        isinstance(exc, DBAPIError) and not is_unavailable(exc)
    )


async def _one_by_one(
    uow_factory: Callable[[], SqlUnitOfWork],
    items: Sequence[tuple[int, Incoming]],
    engine: DetectionEngine | None,
    result: Ingested,
    macs: RecordMacs | None,
) -> None:
    for index, item in items:
        try:
            result.stored[index] = (await _ingest_partition(uow_factory, [item], engine, macs))[0]
        except (IntegrityViolation, DBAPIError) as exc:
            if not _refusal(exc):
                raise
            result.refused[index] = exc


async def _ingest_group(
    uow_factory: Callable[[], SqlUnitOfWork],
    group: list[tuple[int, Incoming]],
    engine: DetectionEngine | None,
    result: Ingested,
    macs: RecordMacs | None,
) -> None:
    try:
        flags = await _ingest_partition(uow_factory, [item for _, item in group], engine, macs)
    except (IntegrityViolation, DBAPIError) as exc:
        if not _refusal(exc):
            raise
        await _one_by_one(uow_factory, group, engine, result, macs)
        return
    for (index, _), flag in zip(group, flags, strict=True):
        result.stored[index] = flag


async def ingest_batch(
    uow_factory: Callable[[], SqlUnitOfWork],
    items: Sequence[Incoming],
    engine: DetectionEngine | None = None,
    macs: RecordMacs | None = None,
) -> Ingested:
    """Store a poll's worth of events: one transaction per partition, in the order given.

    The partitions' transactions run side by side: one partition's records are chained and
    encoded while the database stores another's (their chains and locks are independent).
    """
    result = Ingested([False] * len(items))
    partitions: dict[int, list[tuple[int, Incoming]]] = {}
    for index, item in enumerate(items):
        partitions.setdefault(item.partition, []).append((index, item))
    outcomes = await asyncio.gather(
        *(_ingest_group(uow_factory, group, engine, result, macs) for group in partitions.values()),
        return_exceptions=True,
    )
    # Every transaction has finished: the first failure goes up, and the batch is retried.
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return result
