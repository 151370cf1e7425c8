"""Identity's settings: MOMENT_IDENTITY_* environment variables, one nested model per adapter."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_settings.base import ServiceSettings
from moment_telemetry.config import TelemetryConfig


class CryptoConfig(BaseModel):
    subject_key_name: str = "identity-subject-keys"
    blind_index_path: str = "moment/identity/blind-index"
    pepper_path: str = "moment/identity/pepper"
    sealing_key_path: str = "moment/identity/sealing-key"
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_iterations: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_IDENTITY_")

    kafka: KafkaConfig = KafkaConfig(client_id="identity")
    database: DatabaseConfig
    vault: VaultConfig
    telemetry: TelemetryConfig = TelemetryConfig(service_name="identity")
    crypto: CryptoConfig = CryptoConfig()
