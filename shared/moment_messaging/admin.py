"""Topics are created explicitly at start-up: Tansu keeps nothing across restarts, and auto-creation
would hide a typo in a topic name until messages silently went nowhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from moment_contracts.topics import TopicSpec
from moment_messaging.config import KafkaConfig

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The Kafka broker could not be reached."""


async def ensure_topics(
    config: KafkaConfig, specs: Iterable[TopicSpec], *, attempts: int = 30
) -> None:
    wanted = {spec.name: spec for spec in specs}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers,
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=config.request_timeout_ms,
    )
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except (KafkaConnectionError, OSError) as exc:
            if attempt == attempts - 1:
                raise BrokerUnavailable(
                    f"Kafka is not reachable at {config.bootstrap_servers}"
                ) from exc
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=config.replication_factor,
                topic_configs=dict(spec.config),
            )
            for name, spec in wanted.items()
            if name not in existing
        ]
        if missing:
            await _create(admin, missing)
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    try:
        await admin.create_topics(topics)
    except TopicAlreadyExistsError:
        log.debug("topics created concurrently by another instance")
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not create topics: {type(exc).__name__}") from exc
