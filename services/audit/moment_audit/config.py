"""Audit's settings: MOMENT_AUDIT_* environment variables."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from moment_audit.domain.rules import RulesConfig
from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_settings.base import ServiceSettings
from moment_telemetry.config import TelemetryConfig


class CheckpointConfig(BaseModel):
    """Signed checkpoints of each partition's chain: every N records or T seconds, first wins."""

    every_records: int = Field(default=100, ge=1)
    every_seconds: float = Field(default=60.0, gt=0)
    # An ed25519 Transit key: its public keys let anyone verify checkpoints offline.
    key_name: str = "audit-checkpoints"


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_AUDIT_")

    kafka: KafkaConfig = KafkaConfig(client_id="audit")
    database: DatabaseConfig
    # Signs checkpoints (Transit); without it (dev only) no checkpoint is made and verify says so.
    vault: VaultConfig | None = None
    checkpoints: CheckpointConfig = CheckpointConfig()
    rules: RulesConfig = RulesConfig()
    telemetry: TelemetryConfig = TelemetryConfig(service_name="audit")
