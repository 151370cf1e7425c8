"""OpenTelemetry traces and metrics, and structured JSON logs that drop personal data."""

from moment_telemetry.config import TelemetryConfig
from moment_telemetry.logging import PiiScrubbingFilter, TraceContextFilter, configure_logging
from moment_telemetry.metrics import Metrics, setup_metrics
from moment_telemetry.tracing import (
    context_from_traceparent,
    current_traceparent,
    extract_context,
    inject_headers,
    kafka_headers,
    setup_tracing,
    trace_id_of,
)

__all__ = [
    "Metrics",
    "PiiScrubbingFilter",
    "TelemetryConfig",
    "TraceContextFilter",
    "configure_logging",
    "context_from_traceparent",
    "current_traceparent",
    "extract_context",
    "inject_headers",
    "kafka_headers",
    "setup_metrics",
    "setup_tracing",
    "trace_id_of",
]
