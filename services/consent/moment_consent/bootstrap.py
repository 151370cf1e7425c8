"""The consent service's composition root."""

from __future__ import annotations

from pathlib import Path

from moment_consent.adapters.kafka import register_handlers
from moment_consent.adapters.orm import messaging, metadata
from moment_consent.config import ConsentSettings
from moment_runtime.basic import BasicService

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: ConsentSettings) -> BasicService:
    return BasicService(
        name="consent",
        settings=settings,
        metadata=metadata,
        tables=messaging,
        migrations=MIGRATIONS,
        register=register_handlers,
    )
