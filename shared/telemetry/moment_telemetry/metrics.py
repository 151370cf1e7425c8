"""The process-wide OpenTelemetry meter provider and the instruments the services share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, UpDownCounter
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader

from moment_telemetry.config import TelemetryConfig, otlp_signal_url
from moment_telemetry.tracing import service_resource

__all__ = ["SECONDS_BUCKETS", "Metrics", "build_meter_provider", "setup_metrics"]

SECONDS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
"""Histogram bounds for durations in seconds; the SDK's defaults suit milliseconds."""

_log = logging.getLogger(__name__)


@dataclass
class _Installed:
    provider: MeterProvider | None = None


_installed = _Installed()
_install_lock = threading.Lock()


def _metric_exporter(config: TelemetryConfig) -> MetricExporter | None:
    endpoint = otlp_signal_url(config, "metrics")
    if endpoint is None:
        return None
    # Imported lazily: the gRPC stack is heavy and most processes use only one protocol.
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(endpoint=endpoint)


def build_meter_provider(config: TelemetryConfig) -> MeterProvider:
    """A new SDK meter provider for ``config``, without installing it globally.

    Without an endpoint the provider has no reader: instruments work but nothing is exported.
    """
    exporter = _metric_exporter(config)
    readers = []
    if exporter is not None:
        interval_ms = config.metrics_export_interval_s * 1000
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms))
    return MeterProvider(metric_readers=readers, resource=service_resource(config))


def setup_metrics(config: TelemetryConfig) -> MeterProvider:
    """Install the global meter provider once and return it; later calls return the same one.

    As with tracing, the first configuration wins and an SDK provider that is already
    installed is adopted.
    """
    with _install_lock:
        if _installed.provider is not None:
            return _installed.provider
        current = metrics.get_meter_provider()
        if isinstance(current, MeterProvider):
            _log.debug("adopting the meter provider that is already installed")
            provider = current
        else:
            provider = build_meter_provider(config)
            metrics.set_meter_provider(provider)
        _installed.provider = provider
        return provider


class Metrics:
    """The instruments a service records into, created once per service.

    Attributes must never hold personal data; use topics, event types, operations, outcomes.

    - ``messages_dead_lettered``: add 1 per message sent to a DLQ (``topic``, ``reason``).
    - ``outbox_published``: add the count of outbox rows published (``topic``).
    - ``outbox_lag_seconds``: record the age of each outbox row when it is published.
    - ``outbox_pending``: add +n/-n as rows enter and leave the outbox.
    - ``requests_served``: add 1 per handled request (``operation``, ``outcome``).
    - ``request_duration_seconds``: record each request's handling time (same attributes).
    """

    def __init__(
        self, meter_provider: ApiMeterProvider | None = None, *, scope: str = "moment"
    ) -> None:
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._meter = provider.get_meter(scope)
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._up_down: dict[str, UpDownCounter] = {}
        self.messages_dead_lettered = self.counter(
            "moment.messages.dead_lettered",
            unit="{message}",
            description="Messages moved to a dead-letter topic",
        )
        self.outbox_published = self.counter(
            "moment.outbox.published", unit="{message}", description="Outbox rows published"
        )
        self.outbox_lag_seconds = self.histogram(
            "moment.outbox.lag", description="Age of outbox rows when they are published"
        )
        self.outbox_pending = self.up_down_counter(
            "moment.outbox.pending", unit="{message}", description="Outbox rows not yet published"
        )
        self.requests_served = self.counter(
            "moment.requests.served", unit="{request}", description="Requests handled"
        )
        self.request_duration_seconds = self.histogram(
            "moment.request.duration", description="Time taken to handle a request"
        )

    def counter(self, name: str, *, unit: str = "1", description: str = "") -> Counter:
        """The counter called ``name``, created on first use."""
        if name not in self._counters:
            self._counters[name] = self._meter.create_counter(name, unit, description)
        return self._counters[name]

    def up_down_counter(
        self, name: str, *, unit: str = "1", description: str = ""
    ) -> UpDownCounter:
        """The up-down counter called ``name``, created on first use."""
        if name not in self._up_down:
            self._up_down[name] = self._meter.create_up_down_counter(name, unit, description)
        return self._up_down[name]

    def histogram(
        self,
        name: str,
        *,
        unit: str = "s",
        description: str = "",
        buckets: Sequence[float] = SECONDS_BUCKETS,
    ) -> Histogram:
        """The histogram called ``name``, created on first use (seconds by default)."""
        if name not in self._histograms:
            self._histograms[name] = self._meter.create_histogram(
                name, unit, description, explicit_bucket_boundaries_advisory=buckets
            )
        return self._histograms[name]
