"""Topics are created explicitly at start-up: Tansu keeps nothing across restarts, and auto-creation
would hide a typo in a topic name until messages silently went nowhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from moment_contracts.topics import TopicSpec

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The Kafka broker could not be reached."""


async def create_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    client_id: str = "moment-admin",
    request_timeout_ms: int = 10_000,
    replication_factor: int = 1,
    attempts: int = 30,
) -> None:
    """Create whichever of `specs` are missing; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
    )
    await _start(admin, bootstrap_servers, attempts)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=dict(spec.config),
            )
            for spec in {s.name: s for s in specs}.values()
            if spec.name not in existing
        ]
        if missing:
            await _create(admin, missing)
    finally:
        await admin.close()


async def _start(admin: AIOKafkaAdminClient, bootstrap_servers: str, attempts: int) -> None:
    for attempt in range(attempts):
        try:
            await admin.start()
            return
        except (KafkaConnectionError, OSError) as exc:
            if attempt == attempts - 1:
                raise BrokerUnavailable(f"Kafka is not reachable at {bootstrap_servers}") from exc
            await asyncio.sleep(0.2)


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> None:
    try:
        await admin.create_topics(topics)
    except TopicAlreadyExistsError:
        log.debug("topics created concurrently by another instance")
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not create topics: {type(exc).__name__}") from exc
