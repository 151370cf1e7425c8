"""The process-wide OpenTelemetry tracer provider and W3C trace-context helpers.

Messages carry their trace context in Kafka headers (``traceparent``/``tracestate``/``baggage``)
so that a request can be followed across identity, consent and audit.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from moment_telemetry.config import TelemetryConfig, otlp_signal_url

__all__ = [
    "HeaderPairs",
    "build_tracer_provider",
    "context_from_traceparent",
    "current_traceparent",
    "extract_context",
    "inject_headers",
    "kafka_headers",
    "service_resource",
    "setup_tracing",
    "trace_id_of",
]

HeaderPairs = Iterable[tuple[str, str | bytes | None]]
"""Kafka record headers as aiokafka and FastStream hand them over: ``(key, value)`` pairs."""

_log = logging.getLogger(__name__)
_W3C = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


@dataclass
class _Installed:
    provider: TracerProvider | None = None


_installed = _Installed()
_install_lock = threading.Lock()


def service_resource(config: TelemetryConfig) -> Resource:
    """The OTel resource that names the service on every span and metric."""
    return Resource.create({SERVICE_NAME: config.service_name})


def _span_exporter(config: TelemetryConfig) -> SpanExporter | None:
    endpoint = otlp_signal_url(config, "traces")
    if endpoint is None:
        return None
    # Imported lazily: the gRPC stack is heavy and most processes use only one protocol.
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=endpoint)


def build_tracer_provider(config: TelemetryConfig) -> TracerProvider:
    """A new SDK tracer provider for ``config``, without installing it globally.

    Spans are batched to the OTLP exporter only when an endpoint is configured.
    """
    provider = TracerProvider(resource=service_resource(config))
    exporter = _span_exporter(config)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup_tracing(config: TelemetryConfig) -> TracerProvider:
    """Install the global tracer provider once and return it; later calls return the same one.

    OpenTelemetry refuses to replace a global provider, so the first configuration wins. If an
    SDK provider was already installed by someone else, it is adopted rather than shadowed.
    """
    with _install_lock:
        if _installed.provider is not None:
            return _installed.provider
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            _log.debug("adopting the tracer provider that is already installed")
            provider = current
        else:
            provider = build_tracer_provider(config)
            trace.set_tracer_provider(provider)
        _installed.provider = provider
        return provider


def current_traceparent(context: Context | None = None) -> str | None:
    """The W3C ``traceparent`` of the current span (or of ``context``), if one is recording."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier.get("traceparent")


def trace_id_of(traceparent: str) -> str | None:
    """The 32-hex trace id inside a W3C ``traceparent``, or ``None`` if it is malformed."""
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"]):
        return None
    if match["trace_id"] == _ZERO_TRACE_ID or match["span_id"] == _ZERO_SPAN_ID:
        return None
    return match["trace_id"]


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose parent is the span named by ``traceparent`` (empty if none or invalid).

    Lets work picked up later, such as an outbox row, continue the trace that created it.
    """
    if not traceparent:
        return Context()
    return _W3C.extract({"traceparent": traceparent})


def inject_headers(headers: dict[str, str], context: Context | None = None) -> dict[str, str]:
    """Write the current (or given) trace context into ``headers`` and return them."""
    propagate.inject(headers, context=context)
    return headers


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The current trace context as a Kafka header list (UTF-8 bytes values)."""
    return [(key, value.encode()) for key, value in inject_headers({}, context).items()]


def extract_context(
    headers: Mapping[str, str | bytes | None] | HeaderPairs, context: Context | None = None
) -> Context:
    """The trace context carried by message headers, given as a mapping or Kafka header pairs.

    Keys are matched case-insensitively and bytes values are decoded as UTF-8. When a header
    list repeats a key, the last occurrence wins because it was added most recently.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if value is None:
            continue
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        carrier[key.lower()] = text
    return propagate.extract(carrier, context=context)
