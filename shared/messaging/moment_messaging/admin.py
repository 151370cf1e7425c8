"""Topic creation with a service's Kafka settings (the mechanism lives in the client library)."""

from __future__ import annotations

from collections.abc import Iterable

from moment_client.admin import BrokerUnavailable, create_topics
from moment_contracts.topics import TopicSpec
from moment_messaging.config import KafkaConfig

__all__ = ["BrokerUnavailable", "ensure_topics"]


async def ensure_topics(
    config: KafkaConfig, specs: Iterable[TopicSpec], *, attempts: int = 30
) -> None:
    await create_topics(
        config.bootstrap_servers,
        specs,
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=config.request_timeout_ms,
        replication_factor=config.replication_factor,
        attempts=attempts,
    )
