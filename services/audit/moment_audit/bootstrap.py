"""The audit service's composition root."""

from __future__ import annotations

from pathlib import Path

from moment_audit.adapters.kafka import register_handlers
from moment_audit.adapters.orm import messaging, metadata
from moment_audit.config import AuditSettings
from moment_runtime.basic import BasicService

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: AuditSettings) -> BasicService:
    return BasicService(
        name="audit",
        settings=settings,
        metadata=metadata,
        tables=messaging,
        migrations=MIGRATIONS,
        register=register_handlers,
    )
