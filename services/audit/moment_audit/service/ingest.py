"""Ingest one audit event: store it once, keyed by its CloudEvents source and id, and chain it.

De-duplication comes before sequencing, so a redelivered event takes no seq. The caller commits
the Kafka offset only after `uow.commit()` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime

from moment_audit.adapters.orm import messaging
from moment_audit.adapters.repositories import SqlAuditStore
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.streams import follow_ups
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_messaging.outbox import add_to_outbox
from moment_persistence.unit_of_work import SqlUnitOfWork


async def ingest(
    uow: SqlUnitOfWork,
    envelope: Envelope,
    event: PersonalDataAccessed,
    partition: int,
    offset: int,
    engine: DetectionEngine | None = None,
) -> bool:
    stored = await SqlAuditStore(uow.session).append(
        {
            "source": envelope.source,
            "event_id": envelope.id,
            # The producer's sequence is checked in flight (domain/gaps.py), not kept in the chain.
            **event.model_dump(exclude={"fields", "producer_seq"}),
            "fields": list(event.fields),
            # SQLite keeps no offset: store UTC so the hashed instant reads back the same.
            "occurred_at": event.occurred_at.astimezone(UTC),
            "kafka_partition": partition,
            "kafka_offset": offset,
            "received_at": datetime.now(UTC),
        },
        partition,
    )
    if stored:
        await add_to_outbox(uow.session, messaging, follow_ups(envelope, event, engine))
    await uow.commit()
    return stored
