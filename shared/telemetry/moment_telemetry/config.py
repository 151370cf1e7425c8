"""Telemetry settings shared by every service: where to export and how to log."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class TelemetryConfig(BaseModel):
    """How a service reports traces, metrics and logs.

    ``otlp_endpoint`` is the collector's base address, as for ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (``http://127.0.0.1:4318`` for HTTP, ``http://127.0.0.1:4317`` for gRPC). Nothing is exported
    while it is unset, so development and tests need no collector.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_name: str = Field(min_length=1)
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_export_interval_s: float = Field(default=15, gt=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        # Environment variables are commonly written in lower case ("info").
        return value.upper() if isinstance(value, str) else value


def otlp_signal_url(config: TelemetryConfig, signal: Literal["traces", "metrics"]) -> str | None:
    """The exporter address for one signal, or ``None`` when export is off.

    The HTTP exporters take the full signal URL while gRPC takes the bare endpoint; a base
    address that already names a signal path is tolerated so one setting serves both signals.
    """
    if config.otlp_endpoint is None:
        return None
    if config.otlp_protocol == "grpc":
        return config.otlp_endpoint
    base = config.otlp_endpoint.rstrip("/")
    for known in ("/v1/traces", "/v1/metrics"):
        base = base.removesuffix(known)
    return f"{base}/v1/{signal}"
