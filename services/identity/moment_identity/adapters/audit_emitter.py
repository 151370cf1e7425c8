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
from moment_crypto.keysets import VersionedKeys
from moment_crypto.producer_mac import ProducerSigner
from moment_crypto.vault import VaultClient
from moment_identity.domain.errors import IdentityError
from moment_identity.service.unit_of_work import SOURCE, IdentityUnitOfWork, signed_audit
from moment_messaging.outbox import current_trace_headers
from moment_messaging.producer import OutgoingRecord, PublishError, ResilientProducer


class AuditUnavailable(IdentityError):
    """The access could not be recorded, so it must not happen."""


class ProducerKey:
    """Identity's producer MAC key set (an AuditSigner): read at start, reloaded now and then so
    a rotation in Vault is picked up without a restart; never a Vault call per event."""

    def __init__(self, vault: VaultClient, path: str, keys: VersionedKeys) -> None:
        self._vault = vault
        self._path = path
        self._signer = ProducerSigner(keys)

    @classmethod
    async def load(cls, vault: VaultClient, path: str) -> ProducerKey:
        return cls(vault, path, await VersionedKeys.load(vault, path))

    async def refresh(self) -> None:
        self._signer = ProducerSigner(await VersionedKeys.load(self._vault, self._path))

    def __call__(self, envelope: Envelope) -> dict[str, str]:
        return self._signer.headers_for(envelope.headers(), envelope.data)


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
        envelope = signed_audit(uow.sign, envelope)
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
