"""The tracer provider set-up and the W3C trace-context helpers."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from moment_telemetry import (
    TelemetryConfig,
    context_from_traceparent,
    current_traceparent,
    extract_context,
    inject_headers,
    kafka_headers,
    setup_tracing,
    trace_id_of,
)
from moment_telemetry.config import otlp_signal_url
from moment_telemetry.tracing import build_tracer_provider

TRACER = TracerProvider().get_tracer(__name__)


def _trace_id(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def test_setup_tracing_is_idempotent() -> None:
    first = setup_tracing(TelemetryConfig(service_name="first"))
    second = setup_tracing(TelemetryConfig(service_name="second"))
    assert first is second
    assert trace.get_tracer_provider() is first


def test_provider_names_the_service_and_exports_nothing_without_endpoint() -> None:
    provider = build_tracer_provider(TelemetryConfig(service_name="moment-identity"))
    assert provider.resource.attributes["service.name"] == "moment-identity"
    assert provider._active_span_processor._span_processors == ()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_provider_batches_to_otlp_when_endpoint_set(protocol: str) -> None:
    config = TelemetryConfig(
        service_name="svc",
        otlp_endpoint="http://127.0.0.1:4318",
        otlp_protocol=protocol,
    )
    provider = build_tracer_provider(config)
    try:
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("http://collector:4318", "http/protobuf", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http/protobuf", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/metrics", "http/protobuf", "http://collector:4318/v1/traces"),
        ("http://collector:4317", "grpc", "http://collector:4317"),
    ],
)
def test_signal_url(endpoint: str, protocol: str, expected: str) -> None:
    config = TelemetryConfig(service_name="s", otlp_endpoint=endpoint, otlp_protocol=protocol)
    assert otlp_signal_url(config, "traces") == expected


def test_no_traceparent_outside_a_span() -> None:
    assert current_traceparent() is None
    assert kafka_headers() == []


def test_current_traceparent_names_the_current_span() -> None:
    with TRACER.start_as_current_span("work") as span:
        traceparent = current_traceparent()
    assert traceparent is not None
    assert trace_id_of(traceparent) == _trace_id(span)


def test_kafka_header_round_trip_keeps_the_trace_id() -> None:
    with TRACER.start_as_current_span("produce") as producer:
        headers = kafka_headers()
    assert all(isinstance(value, bytes) for _, value in headers)
    context = extract_context([("other", b"x"), *headers])
    with TRACER.start_as_current_span("consume", context=context) as consumer:
        assert _trace_id(consumer) == _trace_id(producer)
    assert trace.get_current_span(context).get_span_context().is_remote


def test_dict_header_round_trip_with_bytes_and_mixed_case_keys() -> None:
    with TRACER.start_as_current_span("produce") as producer:
        headers = inject_headers({"content-type": "application/json"})
    assert headers["content-type"] == "application/json"
    received = {key.title(): value.encode() for key, value in headers.items()}
    context = extract_context(received)
    assert format(trace.get_current_span(context).get_span_context().trace_id, "032x") == (
        _trace_id(producer)
    )


def test_extract_without_trace_headers_gives_an_invalid_span() -> None:
    context = extract_context({"key": b"value"})
    assert not trace.get_current_span(context).get_span_context().is_valid


def test_context_from_traceparent_continues_the_trace() -> None:
    with TRACER.start_as_current_span("enqueue") as origin:
        traceparent = current_traceparent()
    with TRACER.start_as_current_span(
        "publish", context=context_from_traceparent(traceparent)
    ) as later:
        assert _trace_id(later) == _trace_id(origin)
    assert context_from_traceparent(None) is not None


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_trace_id_of(traceparent: str, expected: str | None) -> None:
    assert trace_id_of(traceparent) == expected
