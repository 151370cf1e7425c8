"""Topic creation with a service's Kafka settings (the mechanism lives in the client library)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from moment_client.admin import BrokerUnavailable, create_topics
from moment_contracts.topics import DLQ_SUFFIX, TopicSpec
from moment_messaging.config import KafkaConfig

__all__ = ["BrokerUnavailable", "ensure_topics", "with_record_limit"]


# Kafka's max.message.bytes counts a whole record batch: its header and each record's framing.
_BATCH_OVERHEAD = 1024


def with_record_limit(spec: TopicSpec, max_message_bytes: int) -> TopicSpec:
    """The spec with the contract's record size as the topic's `max.message.bytes`, unless the
    spec sets its own. A dead-letter topic takes twice as much: a dead letter is the refused
    record (or its digest) plus the reason. The broker then refuses larger records; Tansu ignores
    the setting, so the consumers' own refusal (deadletter.check_envelope) is what holds there."""
    if any(name == "max.message.bytes" for name, _ in spec.config):
        return spec
    limit = max_message_bytes * (2 if spec.name.endswith(DLQ_SUFFIX) else 1) + _BATCH_OVERHEAD
    return replace(spec, config=(*spec.config, ("max.message.bytes", str(limit))))


async def ensure_topics(
    config: KafkaConfig, specs: Iterable[TopicSpec], *, attempts: int = 30
) -> None:
    await create_topics(
        config.bootstrap_servers,
        [with_record_limit(spec, config.max_message_bytes) for spec in specs],
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=config.request_timeout_ms,
        replication_factor=config.replication_factor,
        attempts=attempts,
    )
