"""How an access becomes durable before personal data is released (fail closed).

Two ways, chosen in config: `outbox` writes the audit event in the same transaction as the read's
own record, so the reply leaves only after COMMIT; `broker` publishes it to audit.events and waits
for the broker's acknowledgement (acks=all) first. Either way, no audit, no data.
"""

from __future__ import annotations

from typing import Protocol

from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_identity.domain.errors import IdentityError
from moment_identity.service.unit_of_work import SOURCE, IdentityUnitOfWork
from moment_messaging.outbox import current_trace_headers
from moment_messaging.producer import OutgoingRecord, PublishError, ResilientProducer


class AuditUnavailable(IdentityError):
    """The access could not be recorded, so it must not happen."""


class AuditEmitter(Protocol):
    async def emit(self, uow: IdentityUnitOfWork, event: PersonalDataAccessed) -> None: ...


class OutboxAudit:
    async def emit(self, uow: IdentityUnitOfWork, event: PersonalDataAccessed) -> None:
        uow.audit(event)


class BrokerAckAudit:
    def __init__(self, producer: ResilientProducer) -> None:
        self._producer = producer

    async def emit(self, uow: IdentityUnitOfWork, event: PersonalDataAccessed) -> None:
        # The number is taken in the read's transaction: if that rolls back after the broker
        # acknowledged, the number is reused and audit reports a repeat (an access was recorded
        # that then did not complete), which errs on the loud side.
        event = await uow.stamp(event)
        envelope = Envelope.of(
            event, source=SOURCE, subject=event.subject_id, extra=current_trace_headers()
        )
        record = OutgoingRecord(
            topic=topics.AUDIT_EVENTS,
            value=envelope.data,
            key=envelope.key,
            headers=envelope.headers(),
        )
        try:
            await self._producer.send_all([record])
        except PublishError as exc:
            raise AuditUnavailable("the audit event was not acknowledged") from exc
