"""FastStream wiring for the audit service."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaBroker, KafkaMessage

from moment_audit.adapters.orm import metadata
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.ingest import ingest
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_messaging.config import KafkaConfig
from moment_messaging.runtime import envelope_of, of_type, record_of, subscribe
from moment_persistence.unit_of_work import SqlUnitOfWork

GROUP_ID = "audit"


def register_handlers(
    broker: KafkaBroker,
    config: KafkaConfig,
    uow_factory: Callable[[], SqlUnitOfWork],
    engine: DetectionEngine | None = None,
) -> None:
    events = subscribe(
        broker,
        topics.AUDIT_EVENTS,
        group_id=GROUP_ID,
        accepts=TOPIC_MESSAGES[topics.AUDIT_EVENTS],
        config=config,
    )

    @events(filter=of_type(PersonalDataAccessed))
    async def on_personal_data_accessed(body: PersonalDataAccessed, msg: KafkaMessage) -> None:
        """Store an access record once; the offset is committed only after the database commit."""
        record = record_of(msg)
        async with uow_factory() as uow:
            await ingest(uow, envelope_of(msg), body, record.partition, record.offset, engine)


__all__ = ["metadata", "register_handlers"]
