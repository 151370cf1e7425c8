"""Track the subjects whose consent this service manages (guardian consent, purposes, rights)."""

from __future__ import annotations

from sqlalchemy import delete, insert

from moment_consent.adapters.orm import messaging, metadata, subjects
from moment_contracts.envelope import Envelope
from moment_contracts.identity import UserRegistered
from moment_contracts.profile import SubjectErased
from moment_messaging.inbox import Inbox
from moment_persistence.unit_of_work import SqlUnitOfWork

CONSUMER = "consent.subjects"


async def on_user_registered(uow: SqlUnitOfWork, envelope: Envelope, event: UserRegistered) -> bool:
    """Idempotent: the inbox row and the subject row commit together, or neither does."""
    inbox = Inbox(messaging, CONSUMER)
    if await inbox.seen(uow.session, envelope):
        return False
    await uow.session.execute(
        insert(subjects).values(
            subject_id=event.subject_id,
            status=event.status,
            locale=event.locale,
            registered_at=event.registered_at,
        )
    )
    await inbox.record(uow.session, envelope)
    await uow.commit()
    return True


async def on_subject_erased(uow: SqlUnitOfWork, envelope: Envelope, event: SubjectErased) -> bool:
    inbox = Inbox(messaging, CONSUMER)
    if await inbox.seen(uow.session, envelope):
        return False
    await uow.session.execute(delete(subjects).where(subjects.c.subject_id == event.subject_id))
    await inbox.record(uow.session, envelope)
    await uow.commit()
    return True


__all__ = ["metadata", "on_subject_erased", "on_user_registered"]
