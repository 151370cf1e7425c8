"""The audit service's composition root."""

from __future__ import annotations

import logging
from pathlib import Path

from moment_audit.adapters.checkpoints import Checkpointer
from moment_audit.adapters.kafka import register_handlers
from moment_audit.adapters.orm import messaging, metadata
from moment_audit.config import AuditSettings
from moment_audit.domain.rules import DetectionEngine
from moment_audit.service.queries import AccessQueryHandler, LazyVerifier, to_error_reply
from moment_messaging.inbox import Inbox
from moment_messaging.requests import RequestProcessor
from moment_runtime.basic import BasicService

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class AuditService(BasicService):
    """Ingest, plus signed checkpoints of the chains when Vault is configured."""

    def __init__(self, settings: AuditSettings) -> None:
        # In memory, per instance: each instance sees the partitions it owns (see DEVELOPERS.md).
        self.engine = DetectionEngine(settings.rules)
        self._queries: AccessQueryHandler | None = None
        super().__init__(
            name="audit",
            settings=settings,
            metadata=metadata,
            tables=messaging,
            migrations=MIGRATIONS,
            register=lambda broker, config, uows: register_handlers(
                broker, config, uows, self.engine, self.queries
            ),
        )
        self.checkpointer = (
            None
            if self.vault is None
            else Checkpointer(self.vault, settings.checkpoints, self.unit_of_work)
        )

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
                LazyVerifier(self.vault),
            )
        return self._queries

    async def start(self) -> None:
        await super().start()
        if self.checkpointer is None:
            log.warning("no Vault configured: audit checkpoints are not signed (dev only)")
            return
        self.checkpointer.start()

    async def stop(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await super().stop()


def build(settings: AuditSettings) -> AuditService:
    return AuditService(settings)
