"""A service whose handlers need only their database and Kafka (consent and audit, for now)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from faststream.kafka import KafkaBroker
from sqlalchemy import MetaData

from moment_contracts.topics import CORE_TOPICS
from moment_crypto.config import VaultConfig
from moment_crypto.vault import VaultClient
from moment_messaging.config import KafkaConfig
from moment_messaging.tables import MessagingTables
from moment_persistence.config import DatabaseConfig
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.core import ServiceCore
from moment_telemetry.config import TelemetryConfig

Register = Callable[[KafkaBroker, KafkaConfig, Callable[[], SqlUnitOfWork]], None]


class BasicSettings(Protocol):
    @property
    def kafka(self) -> KafkaConfig: ...
    @property
    def database(self) -> DatabaseConfig: ...
    @property
    def telemetry(self) -> TelemetryConfig: ...
    @property
    def vault(self) -> VaultConfig | None: ...


class BasicService:
    def __init__(
        self,
        *,
        name: str,
        settings: BasicSettings,
        metadata: MetaData,
        tables: MessagingTables,
        migrations: Path,
        register: Register,
    ) -> None:
        self.name = name
        self.settings = settings
        self._metadata = metadata
        self.core = ServiceCore(
            name=name,
            kafka=settings.kafka,
            database=settings.database,
            telemetry=settings.telemetry,
            migrations=migrations,
            tables=tables,
            topics=CORE_TOPICS,
        )
        self.vault = VaultClient(settings.vault) if settings.vault else None
        register(self.core.broker, settings.kafka, self.unit_of_work)

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.core.database, metadata=self._metadata)

    async def start(self) -> None:
        await self.core.prepare()
        if self.vault is not None:
            # Proves the service's own AppRole works before it takes any message.
            await self.vault.start()
        await self.before_consuming()
        await self.core.start_consuming()

    async def before_consuming(self) -> None:
        """What a service must have ready (keys, caches) before it takes its first message."""

    async def stop(self) -> None:
        await self.core.stop()
        if self.vault is not None:
            await self.vault.stop()
