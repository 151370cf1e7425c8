"""FastStream wiring for the audit service."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaBroker, KafkaMessage

from moment_audit.adapters.orm import metadata
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.ingest import ingest
from moment_audit.service.queries import AccessQueryHandler
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.audit_queries import SearchAccess
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
    queries: Callable[[], AccessQueryHandler] | None = None,
) -> None:
    """`queries` is called per request, so the broker can be built (and documented) first."""
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

    if queries is not None:
        register_queries(broker, config, queries)


def register_queries(
    broker: KafkaBroker, config: KafkaConfig, queries: Callable[[], AccessQueryHandler]
) -> None:
    commands = subscribe(
        broker,
        topics.AUDIT_COMMANDS,
        group_id=GROUP_ID,
        accepts=TOPIC_MESSAGES[topics.AUDIT_COMMANDS],
        config=config,
    )

    @commands(filter=of_type(SearchAccess))
    async def on_search_access(body: SearchAccess, msg: KafkaMessage) -> None:
        """Who accessed whose data, when and why, newest first; the caller's token is verified."""
        await queries().search_access(envelope_of(msg), body)


__all__ = ["metadata", "register_handlers", "register_queries"]
