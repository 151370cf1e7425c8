"""The parts every service has, assembled and started in one order, stopped in the reverse one.

Start: telemetry, database (migrations in dev), topics, outbox relay, then consumers. Consumers come
last so no message is taken before everything it needs is ready; on stop they go first, so no
message is half-processed while its dependencies shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from faststream.kafka import KafkaBroker

from moment_contracts.topics import TopicSpec
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import DeadLetterPolicy
from moment_messaging.outbox import OutboxRelay
from moment_messaging.producer import ResilientProducer
from moment_messaging.replies import Replier
from moment_messaging.runtime import build_broker
from moment_messaging.tables import MessagingTables
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.migrations import upgrade_to_head
from moment_telemetry.config import TelemetryConfig
from moment_telemetry.logging import configure_logging
from moment_telemetry.metrics import Metrics, setup_metrics
from moment_telemetry.tracing import setup_tracing

log = logging.getLogger(__name__)


class ServiceCore:
    def __init__(
        self,
        *,
        name: str,
        kafka: KafkaConfig,
        database: DatabaseConfig,
        telemetry: TelemetryConfig,
        migrations: Path,
        tables: MessagingTables,
        topics: Sequence[TopicSpec],
    ) -> None:
        self.name = name
        self.source = f"/moment/{name}"
        self.kafka = kafka
        self._database_config = database
        self._migrations = migrations
        self._topics = topics
        configure_logging(telemetry)
        self.tracer_provider = setup_tracing(telemetry)
        self.meter_provider = setup_metrics(telemetry)
        self.database = Database(database)
        self.metrics = Metrics(self.meter_provider)
        self.policy = DeadLetterPolicy(kafka, consumer=name, metrics=self.metrics)
        self.broker: KafkaBroker
        self.replier: Replier
        self.broker, self.replier = build_broker(
            kafka,
            source=self.source,
            policy=self.policy,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
        )
        self.relay = OutboxRelay(
            self.database.sessionmaker,
            tables,
            ResilientProducer(kafka, f"{name}-relay", on_connect=self._ensure_topics_once),
            kafka,
            skip_locked=self.database.dialect == "postgresql",
            metrics=self.metrics,
        )

    async def prepare(self) -> None:
        """Everything before consuming: schema and topics."""
        if self._database_config.migrate_on_start:
            await upgrade_to_head(self._database_config.url.get_secret_value(), self._migrations)
        await ensure_topics(self.kafka, self._topics)

    async def _ensure_topics_once(self) -> None:
        await ensure_topics(self.kafka, self._topics, attempts=1)

    async def start_consuming(self) -> None:
        self.relay.start()
        await self.broker.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.broker.stop()
        with contextlib.suppress(Exception):
            await self.replier.close()
        await self.relay.stop()
        await self.database.dispose()


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signalled(
    service: Service, on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    log.info("service ready", extra={"service": service.name})
    if on_ready is not None:
        await on_ready()
    try:
        await stop.wait()
    finally:
        log.info("service stopping", extra={"service": service.name})
        await service.stop()
