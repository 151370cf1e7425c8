"""FastStream wiring for the audit service.

audit.events is consumed in batches: each poll hands over whatever has arrived (up to
`INGEST_BATCH` records), stored in one transaction per partition; the offsets are committed after
the last of those commits. Each record is checked on its own, and one that is malformed, of an
unknown type, breaks the schema or is refused by the database goes to audit.events.dlq with its
reason while the rest of the batch is stored. So does one that does not prove a known producer
wrote it (service/producers.py), checked before its body is parsed and before anything is chained;
each poll with such records raises a `forged-producer` alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import SkipValidation

from moment_audit.adapters.intake import decode
from moment_audit.adapters.orm import metadata, revocations
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.ingest import ingest_batch
from moment_audit.service.producers import ProducerGate
from moment_audit.service.queries import AccessQueryHandler
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.audit_queries import SearchAccess
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_crypto.record_mac import RecordMacs
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import PermanentError, RejectedRecords
from moment_messaging.runtime import (
    envelope_of,
    of_type,
    records_of,
    subscribe,
    subscribe_batch,
)
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.revocations import SqlRevocationStore, register_revocation_feed

GROUP_ID = "audit"
# The query API's group, apart from ingest's: a (re)start joins each group with one member per
# process, so ingest never waits for a second rebalance (nor for a killed process's query
# consumer's session to expire) before it consumes again.
QUERIES_GROUP_ID = "audit-queries"
# Records per poll at most: enough to amortise a transaction, few enough to keep one short.
INGEST_BATCH = 500


class Presence(ConsumerRebalanceListener):  # type: ignore[misc]
    """When the consumer of audit.events was last given its partitions (after a start or a
    rebalance), None while it has none: the watch's gap grace counts from it (service/watch.py)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._since: datetime | None = None

    def since(self) -> datetime | None:
        return self._since

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:  # noqa: ARG002
        self._since = None

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:  # noqa: ARG002
        # Also when none is assigned: another instance then reads them, as for any hole.
        self._since = self._clock()


def refusal(exc: Exception) -> PermanentError:
    # The error's class only: a driver's message may quote the value it refused.
    return PermanentError(f"the audit store refused the record ({type(exc).__name__})")


def register_handlers(
    broker: KafkaBroker,
    config: KafkaConfig,
    uow_factory: Callable[[], SqlUnitOfWork],
    engine: DetectionEngine | None = None,
    queries: Callable[[], AccessQueryHandler] | None = None,
    *,
    gate: Callable[[], ProducerGate],
    record_macs: Callable[[], RecordMacs | None] | None = None,
    presence: Presence | None = None,
) -> None:
    """`queries`, `gate` and `record_macs` (the service's record MAC keys, which refresh) are
    called per request or poll, so the broker can be built (and documented) first."""
    events = subscribe_batch(
        broker,
        topics.AUDIT_EVENTS,
        group_id=GROUP_ID,
        config=config,
        max_records=INGEST_BATCH,
        listener=presence,
    )

    @events
    async def on_personal_data_accessed(
        # For the AsyncAPI document only: each Kafka message is one PersonalDataAccessed. At
        # run time this is the batch's list of bodies, unvalidated: each record is checked on
        # its own below, so one bad record is dead-lettered alone, not with its whole batch.
        body: Annotated[PersonalDataAccessed, SkipValidation],  # noqa: ARG001
        msg: KafkaMessage,
    ) -> None:
        """Store each access record once, chained; offsets are committed after the database."""
        items, sources, rejected = decode(records_of(msg), config, gate().check)
        macs = None if record_macs is None else record_macs()
        ingested = await ingest_batch(uow_factory, items, engine, macs)
        rejected += [(sources[i], refusal(exc)) for i, exc in ingested.refused.items()]
        await gate().report(rejected)
        if rejected:
            raise RejectedRecords(rejected)

    if queries is not None:
        register_queries(broker, config, queries)


def register_queries(
    broker: KafkaBroker, config: KafkaConfig, queries: Callable[[], AccessQueryHandler]
) -> None:
    commands = subscribe(
        broker,
        topics.AUDIT_COMMANDS,
        group_id=QUERIES_GROUP_ID,
        accepts=TOPIC_MESSAGES[topics.AUDIT_COMMANDS],
        config=config,
    )

    @commands(filter=of_type(SearchAccess))
    async def on_search_access(body: SearchAccess, msg: KafkaMessage) -> None:
        """Who accessed whose data, when and why, newest first; the caller's token is verified."""
        await queries().search_access(envelope_of(msg), body)


# A group of its own: joining it never rebalances ingest or the query API.
REVOCATIONS_GROUP_ID = "audit-revocations"


def register_revocations(
    broker: KafkaBroker, config: KafkaConfig, uow_factory: Callable[[], SqlUnitOfWork]
) -> SqlRevocationStore:
    """identity.events' token revocations, recorded in audit's `revocations` table; returns the
    store the query API checks tokens against."""
    store = SqlRevocationStore(uow_factory, revocations)
    register_revocation_feed(broker, config, store, group_id=REVOCATIONS_GROUP_ID)
    return store


__all__ = ["metadata", "register_handlers", "register_queries", "register_revocations"]
