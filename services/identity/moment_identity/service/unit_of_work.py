"""Identity's unit of work: repositories plus the outbox, committed together."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_identity.adapters.orm import messaging, metadata
from moment_identity.adapters.repositories import SqlUserRepository
from moment_identity.adapters.sequences import take_sequence
from moment_identity.domain.errors import IdentityError
from moment_messaging.outbox import OutboxMessage, add_to_outbox
from moment_persistence.unit_of_work import SessionSource, SqlUnitOfWork
from moment_telemetry.tracing import current_traceparent, trace_id_of

SOURCE = "/moment/identity"
# What an audit record (and identity's own tables) can hold of a request id as it came.
_PLAIN_REQUEST_ID = re.compile(r"[!-~]{1,128}")
# The producer MAC headers for an audit envelope (moment_crypto.producer_mac), with identity's key.
AuditSigner = Callable[[Envelope], dict[str, str]]


class AuditNotSigned(IdentityError):
    """An audit event was about to be written without identity's producer key: audit would refuse
    it, so the change that needs it must not happen either."""


def signed_audit(sign: AuditSigner | None, envelope: Envelope) -> Envelope:
    """The envelope with its producer MAC, made when the event is created: the outbox relay and
    the broker only carry it."""
    if sign is None:
        raise AuditNotSigned("no producer key to sign the audit event with")
    return replace(envelope, extra={**envelope.extra, **sign(envelope)})


@dataclass(frozen=True)
class _PendingAudit:
    event: PersonalDataAccessed


class IdentityUnitOfWork(SqlUnitOfWork):
    def __init__(
        self,
        source: SessionSource,
        on_commit: Callable[[], None] = lambda: None,
        sign: AuditSigner | None = None,
    ) -> None:
        super().__init__(source, metadata=metadata)
        self._on_commit = on_commit
        self.sign = sign

    @property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self.session)

    def publish(self, topic: str, body: Contract, subject: str) -> None:
        self.collect(OutboxMessage(topic, Envelope.of(body, source=SOURCE, subject=subject)))

    def audit(self, event: PersonalDataAccessed) -> None:
        # Numbered at commit, all at once: one counter update per transaction, not per event.
        self.collect(_PendingAudit(event))

    async def stamp(self, event: PersonalDataAccessed) -> PersonalDataAccessed:
        """The event with the producer's next sequence number, taken in this transaction."""
        seq = await take_sequence(self.session, SOURCE)
        return event.model_copy(update={"producer_seq": seq})

    async def _before_commit(self) -> None:
        pending = self.pending_events
        audits = sum(isinstance(e, _PendingAudit) for e in pending)
        seq = await take_sequence(self.session, SOURCE, audits) if audits else 0
        messages: list[OutboxMessage] = []
        for item in pending:
            if isinstance(item, _PendingAudit):
                event = item.event.model_copy(update={"producer_seq": seq})
                seq += 1
                envelope = Envelope.of(event, source=SOURCE, subject=event.subject_id)
                envelope = signed_audit(self.sign, envelope)
                messages.append(OutboxMessage(topics.AUDIT_EVENTS, envelope))
            elif isinstance(item, OutboxMessage):
                messages.append(item)
        await add_to_outbox(self.session, messaging, messages)

    async def commit(self) -> None:
        had_events = bool(self.pending_events)
        await super().commit()
        if had_events:
            self._on_commit()


def request_ref(request_id: str) -> str:
    """An envelope attribute (a request id, a source) as sent when it is short visible ASCII, else
    a digest of it: an id nobody validated must not stop its attempt being recorded (it did)."""
    if _PLAIN_REQUEST_ID.fullmatch(request_id):
        return request_id
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def audit_event(
    *,
    action: str,
    subject_id: str,
    actor_id: str,
    actor_role: str,
    fields: tuple[str, ...],
    outcome: str,
    purpose: str | None,
    request_id: str | None,
) -> PersonalDataAccessed:
    return PersonalDataAccessed.model_validate(
        {
            "action": action,
            "actor_id": actor_id,
            "actor_role": actor_role,
            "subject_id": subject_id,
            "fields": fields,
            "purpose": purpose,
            "outcome": outcome,
            "occurred_at": datetime.now(UTC),
            "request_id": None if request_id is None else request_ref(request_id),
            "trace_id": trace_id_of(current_traceparent() or ""),
        }
    )
