"""The audit service's composition root."""

from __future__ import annotations

import logging
from pathlib import Path

from moment_audit.adapters.checkpoints import Checkpointer
from moment_audit.adapters.kafka import register_handlers
from moment_audit.adapters.orm import messaging, metadata
from moment_audit.config import AuditSettings
from moment_runtime.basic import BasicService

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class AuditService(BasicService):
    """Ingest, plus signed checkpoints of the chains when Vault is configured."""

    def __init__(self, settings: AuditSettings) -> None:
        super().__init__(
            name="audit",
            settings=settings,
            metadata=metadata,
            tables=messaging,
            migrations=MIGRATIONS,
            register=register_handlers,
        )
        self.checkpointer = (
            None
            if self.vault is None
            else Checkpointer(self.vault, settings.checkpoints, self.unit_of_work)
        )

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
