"""FastStream wiring: thin handlers that turn a Kafka message into a use-case call."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import DefaultSubscriber

from moment_contracts import topics
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_contracts.identity import GetSealingKey, Login, RecordGuardianConsent, RegisterUser
from moment_contracts.principals import ServiceLogin, StaffLogin
from moment_contracts.profile import (
    ErasePersonalData,
    ExportPersonalData,
    ReadPersonalData,
    UpdatePersonalData,
)
from moment_contracts.recovery import AnswerRecovery, StartRecovery
from moment_identity.service.handlers import IdentityHandlers
from moment_messaging.config import KafkaConfig
from moment_messaging.runtime import envelope_of, of_type, subscribe

GROUP_ID = "identity"


def register_handlers(
    broker: KafkaBroker, config: KafkaConfig, handlers: Callable[[], IdentityHandlers]
) -> None:
    """`handlers` is called per message, so the broker can be built (and documented) before start-
    up.

    """
    commands = subscribe(
        broker,
        topics.IDENTITY_COMMANDS,
        group_id=GROUP_ID,
        accepts=TOPIC_MESSAGES[topics.IDENTITY_COMMANDS],
        config=config,
    )

    @commands(filter=of_type(RegisterUser))
    async def on_register_user(body: RegisterUser, msg: KafkaMessage) -> None:
        """Register a customer. Personal fields arrive sealed to identity's public key."""
        await handlers().register_user(envelope_of(msg), body)

    @commands(filter=of_type(Login))
    async def on_login(body: Login, msg: KafkaMessage) -> None:
        """Log in by username or e-mail; the session token comes back sealed to `reply_key`."""
        await handlers().login(envelope_of(msg), body)

    @commands(filter=of_type(ReadPersonalData))
    async def on_read_personal_data(body: ReadPersonalData, msg: KafkaMessage) -> None:
        """Read named fields for a purpose; values come back sealed, after the read is audited."""
        await handlers().read_personal_data(envelope_of(msg), body)

    register_rights(commands, handlers)

    @commands(filter=of_type(GetSealingKey))
    async def on_get_sealing_key(body: GetSealingKey, msg: KafkaMessage) -> None:
        """Return the X25519 public key that clients seal personal data to."""
        await handlers().get_sealing_key(envelope_of(msg), body)

    register_principal_handlers(commands, handlers)
    register_recovery_handlers(commands, handlers)


def register_principal_handlers(
    commands: DefaultSubscriber, handlers: Callable[[], IdentityHandlers]
) -> None:
    @commands(filter=of_type(StaffLogin))
    async def on_staff_login(body: StaffLogin, msg: KafkaMessage) -> None:
        """Log a staff member in; the token (with their roles) comes back sealed to `reply_key`."""
        await handlers().staff_login(envelope_of(msg), body)

    @commands(filter=of_type(ServiceLogin))
    async def on_service_login(body: ServiceLogin, msg: KafkaMessage) -> None:
        """Log a service account in with its secret; the token comes back sealed to `reply_key`."""
        await handlers().service_login(envelope_of(msg), body)


def register_recovery_handlers(
    commands: DefaultSubscriber, handlers: Callable[[], IdentityHandlers]
) -> None:
    @commands(filter=of_type(StartRecovery))
    async def on_start_recovery(body: StartRecovery, msg: KafkaMessage) -> None:
        """Start a password recovery; the security question comes back sealed to `reply_key`."""
        await handlers().start_recovery(envelope_of(msg), body)

    @commands(filter=of_type(AnswerRecovery))
    async def on_answer_recovery(body: AnswerRecovery, msg: KafkaMessage) -> None:
        """Answer the security question (and the mailed code) to set a new password."""
        await handlers().answer_recovery(envelope_of(msg), body)


def register_rights(commands: DefaultSubscriber, handlers: Callable[[], IdentityHandlers]) -> None:
    """Rectification, export and erasure: the data-subject rights on identity's data."""

    @commands(filter=of_type(UpdatePersonalData))
    async def on_update(body: UpdatePersonalData, msg: KafkaMessage) -> None:
        """Rectify named fields; ProfileUpdated names the fields, never the values."""
        await handlers().update_personal_data(envelope_of(msg), body)

    @commands(filter=of_type(ExportPersonalData))
    async def on_export(body: ExportPersonalData, msg: KafkaMessage) -> None:
        """Everything held about a subject, as JSON sealed to `reply_key`."""
        await handlers().export_personal_data(envelope_of(msg), body)

    @commands(filter=of_type(RecordGuardianConsent))
    async def on_guardian_consent(body: RecordGuardianConsent, msg: KafkaMessage) -> None:
        """Record a guardian's consent: a minor's pending account becomes active."""
        await handlers().record_guardian_consent(envelope_of(msg), body)

    @commands(filter=of_type(ErasePersonalData))
    async def on_erase(body: ErasePersonalData, msg: KafkaMessage) -> None:
        """Crypto-shred a subject: destroy its key, remove its rows, publish SubjectErased."""
        await handlers().erase_personal_data(envelope_of(msg), body)
