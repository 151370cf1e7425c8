"""The audit service's composition root."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from faststream.kafka import KafkaBroker

from moment_audit.adapters.checkpoints import Checkpointer
from moment_audit.adapters.kafka import Presence, register_handlers, register_revocations
from moment_audit.adapters.live_witness import CheckpointKeys, StreamWitnessReader
from moment_audit.adapters.orm import messaging, metadata
from moment_audit.config import AuditSettings
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.admission import Admission
from moment_audit.service.producers import ForgeryAlarm, ProducerGate, Producers
from moment_audit.service.queries import AccessQueryHandler, LazyVerifier, to_error_reply
from moment_audit.service.record_keys import RecordKeys
from moment_audit.service.verification import vault_signatures, verify_store
from moment_audit.service.verify import Report
from moment_audit.service.watch import Watch
from moment_audit.service.witness_memory import Witness
from moment_audit.service.witness_watch import WitnessWatch
from moment_messaging.config import KafkaConfig
from moment_messaging.inbox import Inbox
from moment_messaging.requests import RequestProcessor
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.basic import BasicService
from moment_runtime.revocations import SqlRevocationStore

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class AuditService(BasicService):
    """Ingest, signed checkpoints of the chains when Vault is configured, and the watch (gaps
    in producers' numbering, periodic verification)."""

    # Set while the broker is built (`_register`): the query API checks tokens against it.
    revocations: SqlRevocationStore

    def __init__(self, settings: AuditSettings) -> None:
        # In memory, per instance: each instance sees the partitions it owns (see DEVELOPERS.md).
        self.engine = DetectionEngine(settings.rules)
        self._queries: AccessQueryHandler | None = None
        self.presence = Presence()
        super().__init__(
            name="audit",
            settings=settings,
            metadata=metadata,
            tables=messaging,
            migrations=MIGRATIONS,
            register=self._register,
        )
        self.gate = ProducerGate(
            Producers(settings.producers, self.vault),
            ForgeryAlarm(self.unit_of_work, settings.producers.alert_window_s),
        )
        self.record_keys = RecordKeys(settings.records, self.vault)
        self._key_name = settings.checkpoints.key_name
        self.checkpointer = (
            None
            if self.vault is None
            else Checkpointer(
                self.vault,
                settings.checkpoints,
                self.unit_of_work,
                Admission(
                    self.unit_of_work,
                    self.record_keys.current,
                    vault_signatures(self.vault, self._key_name),
                ),
            )
        )
        # Stale checkpoints judged as `moment-audit verify` does; without Vault none is signed.
        self._max_age = (
            None if self.vault is None else timedelta(seconds=settings.checkpoints.max_age_s)
        )
        self.watch = Watch(
            self.unit_of_work,
            settings.watch,
            timedelta(seconds=settings.rules.gap_grace_s),
            self.verify_store,
            consuming=self.presence.since,
        )
        self.witness = (
            None
            if self.vault is None or not settings.watch.witness_enabled
            else WitnessWatch(
                self.unit_of_work,
                settings.watch,
                StreamWitnessReader(
                    settings.kafka, CheckpointKeys(self.vault, self._key_name), Witness()
                ),
                settings.kafka,
            )
        )

    def _register(
        self, broker: KafkaBroker, config: KafkaConfig, uows: Callable[[], SqlUnitOfWork]
    ) -> None:
        register_handlers(
            broker,
            config,
            uows,
            self.engine,
            self.queries,
            gate=lambda: self.gate,
            # A lambda: the broker is built before record_keys exists.
            record_macs=lambda: self.record_keys.current(),  # noqa: PLW0108
            presence=self.presence,
        )
        self.revocations = register_revocations(broker, config, uows)

    async def verify_store(self) -> Report:
        """What `moment-audit verify` reports, with the service's own Vault client."""
        lent = [] if self.witness is None else await self.witness.lend()
        async with self.core.database.sessionmaker() as session:
            report = await verify_store(
                session,
                vault_signatures(self.vault, self._key_name),
                witnessed=lent,
                max_age=self._max_age,
                record_macs=self.record_keys.current(),
            )
        if self.witness is not None:
            self.witness.add_to(report)
        return report

    def queries(self) -> AccessQueryHandler:
        # Built on first use: the replier and Vault client exist only once BasicService is set up.
        if self._queries is None:
            self._queries = AccessQueryHandler(
                RequestProcessor(
                    self.unit_of_work,
                    Inbox(messaging, self.name),
                    self.core.replier,
                    to_error_reply,
                    metrics=self.core.metrics,
                ),
                LazyVerifier(self.vault, self.revocations, self.core.metrics),
            )
        return self._queries

    async def before_consuming(self) -> None:
        # No record is taken before the producers' keys are: without them every one is refused.
        await self.gate.producers.load()
        self.gate.producers.start()
        # Likewise the record MAC key: a record stored without it could never be signed.
        await self.record_keys.load()
        self.record_keys.start()

    async def start(self) -> None:
        await super().start()
        self.watch.start()
        if self.witness is not None:
            self.witness.start()
        if self.checkpointer is None:
            log.warning("no Vault configured: audit checkpoints are not signed (dev only)")
            return
        self.checkpointer.start()

    async def stop(self) -> None:
        await self.gate.producers.stop()
        await self.record_keys.stop()
        await self.watch.stop()
        if self.witness is not None:
            await self.witness.stop()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await super().stop()


def build(settings: AuditSettings) -> AuditService:
    return AuditService(settings)
