"""Audit's settings: MOMENT_AUDIT_* environment variables."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from moment_audit.domain.rules import RulesConfig
from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from moment_persistence.config import DatabaseConfig
from moment_settings.base import ServiceSettings
from moment_telemetry.config import TelemetryConfig


class CheckpointConfig(BaseModel):
    """Signed checkpoints of each partition's chain: every N records or T seconds, first wins,
    and a heartbeat (the unchanged head, signed again) every T seconds when nothing arrives.

    `max_age_s` is how old a partition's newest checkpoint may be before verify calls it a
    STALE CHECKPOINT (`moment-audit verify --max-age` overrides it): at least twice
    `every_seconds`, so a slow Vault call or a restart is not taken for tampering."""

    every_records: int = Field(default=100, ge=1)
    every_seconds: float = Field(default=60.0, gt=0)
    max_age_s: float = Field(default=300.0, gt=0)
    # An ed25519 Transit key: its public keys let anyone verify checkpoints offline.
    key_name: str = "audit-checkpoints"

    @model_validator(mode="after")
    def _max_age_allows_the_cadence(self) -> CheckpointConfig:
        if self.max_age_s < 2 * self.every_seconds:
            raise ValueError(
                f"checkpoints.max_age_s ({self.max_age_s}) must be at least twice "
                f"checkpoints.every_seconds ({self.every_seconds})"
            )
        return self


class RetentionConfig(BaseModel):
    """`moment-audit prune`: records older than `period` go, down to a signed checkpoint."""

    # ISO 8601 ("P400D") or seconds in the environment.
    period: timedelta = Field(default=timedelta(days=400), gt=timedelta(0))
    # Records deleted per transaction, so no prune holds long locks on the store.
    batch_size: int = Field(default=1000, ge=1)


class WatchConfig(BaseModel):
    """The background watch (service/watch.py): overdue gaps and repeated numbers every
    `sweep_seconds`, the whole store verified every `verify_every_seconds` (and at start)."""

    sweep_enabled: bool = True
    sweep_seconds: float = Field(default=5.0, gt=0)
    verify_enabled: bool = True
    verify_every_seconds: float = Field(default=3600.0, gt=0)
    # Alerts raised per verification at most; the rest follow on later runs, one per finding.
    max_verification_alerts: int = Field(default=100, ge=1)
    # The live witness (service/witness_watch.py): the service follows audit.checkpoints and
    # compares the store's checkpoints with what it read every `witness_every_seconds`; a stored
    # checkpoint still off the stream `witness_grace_s` after it was signed is alerted (the outbox
    # relay normally publishes it within a second). Needs Vault, for the checkpoint key.
    witness_enabled: bool = True
    witness_every_seconds: float = Field(default=30.0, gt=0)
    witness_grace_s: float = Field(default=120.0, gt=0)


class ProducersConfig(BaseModel):
    """Who may write audit.events (service/producers.py). `known` maps a CloudEvents source (or a
    prefix ending in "/", for a producer that owns a namespace of sources) to a producer, whose
    HMAC key set is read from Vault KV at `key_path`/<producer> at start-up and every
    `refresh_seconds`. A record that does not prove its producer is dead-lettered, and one
    `forged-producer` alert is raised per source per `alert_window_s`."""

    known: dict[str, str] = Field(default_factory=lambda: {"/moment/identity": "identity"})
    key_path: str = "moment/audit-producers"
    refresh_seconds: float = Field(default=60.0, gt=0)
    alert_window_s: int = Field(default=300, ge=1)


class RecordMacConfig(BaseModel):
    """The audit service's own MAC over each record it stores (moment_crypto.record_mac): an
    HMAC key set read from Vault KV at `key_path` at start-up (Vault unreachable: audit does not
    start) and every `refresh_seconds`. A checkpoint is signed only over records whose MAC
    verifies; one that fails raises an `unauthenticated-record` alert."""

    key_path: str = "moment/audit-records"
    refresh_seconds: float = Field(default=60.0, gt=0)


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOMENT_AUDIT_")

    kafka: KafkaConfig = KafkaConfig(client_id="audit")
    database: DatabaseConfig
    # Signs checkpoints (Transit); without it (dev only) no checkpoint is made and verify says so.
    vault: VaultConfig | None = None
    checkpoints: CheckpointConfig = CheckpointConfig()
    rules: RulesConfig = RulesConfig()
    watch: WatchConfig = WatchConfig()
    producers: ProducersConfig = ProducersConfig()
    records: RecordMacConfig = RecordMacConfig()
    retention: RetentionConfig = RetentionConfig()
    telemetry: TelemetryConfig = TelemetryConfig(service_name="audit")
