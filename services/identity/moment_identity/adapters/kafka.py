"""FastStream wiring: thin handlers that turn a Kafka message into a use-case call."""

from __future__ import annotations

from collections.abc import Callable

from faststream.kafka import KafkaBroker, KafkaMessage

from moment_contracts import topics
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_contracts.identity import GetSealingKey, Login, RegisterUser
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

    @commands(filter=of_type(GetSealingKey))
    async def on_get_sealing_key(body: GetSealingKey, msg: KafkaMessage) -> None:
        """Return the X25519 public key that clients seal personal data to."""
        await handlers().get_sealing_key(envelope_of(msg), body)
