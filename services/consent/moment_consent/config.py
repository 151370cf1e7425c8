"""Consent's settings: MOMENT_CONSENT_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_settings.base import ServiceSettings
from moment_telemetry.config import TelemetryConfig


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_CONSENT_")

    kafka: KafkaConfig = KafkaConfig(client_id="consent")
    database: DatabaseConfig
    vault: VaultConfig | None = None
    telemetry: TelemetryConfig = TelemetryConfig(service_name="consent")
