"""Identity's settings: MOMENT_IDENTITY_* environment variables, one nested model per adapter."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from moment_contracts.sealed import public_key_from_text
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
    # Service-account name -> secret; read once at start-up.
    service_accounts_path: str = "moment/identity/service-accounts"
    # Identity's HMAC key set for the audit events it writes; audit checks it (docs/audit.md).
    audit_producer_key_path: str = "moment/audit-producers/identity"
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


class RecoveryConfig(BaseModel):
    """Password recovery by the security question (privacy policy P1.2); lockout as for login.

    With `code_channel`, a right answer also needs a one-time code, published sealed to the
    storefront mailer's X25519 key (`mailer_public_key`, base64url) for it to mail.
    """

    code_channel: bool = False
    mailer_public_key: str | None = Field(default=None, max_length=64)
    code_ttl_s: int = Field(default=600, ge=60, le=3600)
    code_max_attempts: int = Field(default=5, ge=1, le=10)
    code_resend_s: int = Field(default=60, ge=0, le=3600)

    @model_validator(mode="after")
    def _mailer_key_when_mailing(self) -> Self:
        if self.code_channel and not self.mailer_public_key:
            raise ValueError("code_channel needs mailer_public_key")
        if self.mailer_public_key:
            try:
                public_key_from_text(self.mailer_public_key)
            except ValueError:
                raise ValueError("mailer_public_key is not a base64url X25519 key") from None
        return self


class SealingConfig(BaseModel):
    """How long a sealed request box stays valid after the client sealed it. A box older than
    `max_age_s` (plus `clock_skew_s`), or dated more than `clock_skew_s` ahead, is refused; used
    read ids are remembered at least that long."""

    max_age_s: int = Field(default=300, ge=10, le=3600)
    clock_skew_s: int = Field(default=30, ge=0, le=300)


class ReadsConfig(BaseModel):
    # "outbox": the audit event commits with the read's own record before values are released.
    # "broker": it is published to audit.events and acknowledged (acks=all) first.
    audit_delivery: Literal["outbox", "broker"] = "outbox"
    rotate_sealing_key_on_erasure: bool = True


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_IDENTITY_")

    # Three workers, one per partition of identity.commands: while one request waits on argon2 or
    # Vault, the others proceed, and each partition is still processed in order.
    kafka: KafkaConfig = KafkaConfig(client_id="identity", consumer_workers=3)
    database: DatabaseConfig
    vault: VaultConfig
    telemetry: TelemetryConfig = TelemetryConfig(service_name="identity")
    crypto: CryptoConfig = CryptoConfig()
    login: LoginConfig = LoginConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    reads: ReadsConfig = ReadsConfig()
    sealing: SealingConfig = SealingConfig()
