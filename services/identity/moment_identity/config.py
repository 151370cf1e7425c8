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
    token_signing_key: str = "identity-token-signing"  # noqa: S105 - a Transit key name
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_iterations: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)


class LoginConfig(BaseModel):
    """Brute-force protection, on by default (Kratos lacks it; Keycloak and Zitadel ship it off)."""

    account_max_failures: int = Field(default=5, ge=1)
    source_max_failures: int = Field(default=20, ge=1)
    window_s: int = Field(default=900, ge=1)
    lockout_s: int = Field(default=900, ge=1)
    token_ttl_s: int = Field(default=900, ge=30, le=3600)


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_IDENTITY_")

    kafka: KafkaConfig = KafkaConfig(client_id="identity")
    database: DatabaseConfig
    vault: VaultConfig
    telemetry: TelemetryConfig = TelemetryConfig(service_name="identity")
    crypto: CryptoConfig = CryptoConfig()
    login: LoginConfig = LoginConfig()
