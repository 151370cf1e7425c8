"""The meter provider set-up and the shared instruments."""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from moment_telemetry import Metrics, TelemetryConfig, setup_metrics
from moment_telemetry.metrics import build_meter_provider


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], object]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, object], object]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None) or getattr(point, "sum", None)
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def test_instruments_record_with_attributes() -> None:
    reader = InMemoryMetricReader()
    registry = Metrics(MeterProvider(metric_readers=[reader]))
    registry.messages_dead_lettered.add(1, {"topic": "identity.events", "reason": "schema"})
    registry.outbox_published.add(3, {"topic": "identity.events"})
    registry.outbox_lag_seconds.record(0.2)
    registry.outbox_pending.add(2)
    registry.requests_served.add(1, {"operation": "register", "outcome": "ok"})
    registry.request_duration_seconds.record(0.01, {"operation": "register", "outcome": "ok"})
    points = _points(reader)
    assert points["moment.messages.dead_lettered"] == [
        ({"topic": "identity.events", "reason": "schema"}, 1)
    ]
    assert points["moment.outbox.published"] == [({"topic": "identity.events"}, 3)]
    assert points["moment.outbox.lag"] == [({}, 0.2)]
    assert points["moment.outbox.pending"] == [({}, 2)]
    assert points["moment.requests.served"] == [({"operation": "register", "outcome": "ok"}, 1)]
    assert "moment.request.duration" in points


def test_instruments_are_created_once_per_name() -> None:
    registry = Metrics(MeterProvider())
    assert registry.counter("moment.custom") is registry.counter("moment.custom")
    assert registry.histogram("moment.custom.seconds") is registry.histogram(
        "moment.custom.seconds"
    )


def test_provider_without_endpoint_names_the_service() -> None:
    provider = build_meter_provider(TelemetryConfig(service_name="moment-audit"))
    try:
        assert provider._sdk_config.resource.attributes["service.name"] == "moment-audit"
        assert list(provider._metric_readers) == []
    finally:
        provider.shutdown()


def test_setup_metrics_is_idempotent() -> None:
    first = setup_metrics(TelemetryConfig(service_name="first"))
    second = setup_metrics(TelemetryConfig(service_name="second"))
    assert first is second
    assert metrics.get_meter_provider() is first
