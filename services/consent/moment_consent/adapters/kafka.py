"""FastStream wiring for the consent service."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaBroker, KafkaMessage

from moment_consent.service.subjects import on_subject_erased, on_user_registered
from moment_contracts import topics
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_contracts.identity import UserRegistered
from moment_contracts.profile import SubjectErased
from moment_messaging.config import KafkaConfig
from moment_messaging.runtime import envelope_of, of_type, subscribe
from moment_persistence.unit_of_work import SqlUnitOfWork

GROUP_ID = "consent"


def register_handlers(
    broker: KafkaBroker, config: KafkaConfig, uow_factory: Callable[[], SqlUnitOfWork]
) -> None:
    identity_events = subscribe(
        broker,
        topics.IDENTITY_EVENTS,
        group_id=GROUP_ID,
        accepts=TOPIC_MESSAGES[topics.IDENTITY_EVENTS],
        config=config,
    )

    @identity_events(filter=of_type(UserRegistered))
    async def on_registered(body: UserRegistered, msg: KafkaMessage) -> None:
        """Start tracking a new subject's consent (guardian consent first, for minors)."""
        async with uow_factory() as uow:
            await on_user_registered(uow, envelope_of(msg), body)

    @identity_events(filter=of_type(SubjectErased))
    async def on_erased(body: SubjectErased, msg: KafkaMessage) -> None:
        """Forget an erased subject here too."""
        async with uow_factory() as uow:
            await on_subject_erased(uow, envelope_of(msg), body)

    @identity_events
    async def on_other(msg: KafkaMessage) -> None:
        """Other identity events (logins revoked, profiles updated) need nothing from consent yet:
        they are known types, so they are acknowledged rather than dead-lettered."""
