"""Audit's settings: MOMENT_AUDIT_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_settings.base import ServiceSettings
from moment_telemetry.config import TelemetryConfig


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_AUDIT_")

    kafka: KafkaConfig = KafkaConfig(client_id="audit")
    database: DatabaseConfig
    # Checkpoint signing (Transit) arrives with the audit issue; the login is proven at start-up.
    vault: VaultConfig | None = None
    telemetry: TelemetryConfig = TelemetryConfig(service_name="audit")
