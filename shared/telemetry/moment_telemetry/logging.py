"""Structured logs for the services: JSON lines on stdout, tagged with the trace, free of PII.

Every record passes two handler filters: :class:`PiiScrubbingFilter` (see ``pii.py`` for what it
can and cannot catch) and :class:`TraceContextFilter`, which stamps the current span's ids so a
log line can be joined to its trace.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from moment_telemetry.config import TelemetryConfig
from moment_telemetry.pii import PiiScrubbingFilter

__all__ = [
    "NOISY_LOGGERS",
    "ConsoleFormatter",
    "MomentJsonFormatter",
    "PiiScrubbingFilter",
    "TraceContextFilter",
    "configure_logging",
    "route_to_root",
]

NOISY_LOGGERS: dict[str, int] = {
    "aiokafka": logging.WARNING,
    "kafka": logging.WARNING,
    "urllib3": logging.WARNING,
    "asyncio": logging.WARNING,
}
"""Libraries whose INFO chatter (connections, rebalances) would drown our own lines."""

_HANDLER_NAME = "moment-telemetry"
# Libraries that install their own stdout handler and stop propagation, which would bypass
# the PII filter on our root handler.
_SELF_HANDLING_LOGGERS = ("faststream",)


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, or ``None`` outside a span) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = None
            record.span_id = None
        return True


class MomentJsonFormatter(JsonFormatter):
    """One JSON object per line.

    Fields: time, level, logger, message, service, trace_id, span_id, then any extras.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # Time goes first so that lines read naturally when tailed.
        log_data["time"] = _iso_time(record)
        super().add_fields(log_data, record, message_dict)


class ConsoleFormatter(logging.Formatter):
    """A compact one-line format for people reading a terminal during development."""

    def __init__(self) -> None:
        super().__init__("%(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        # Overridden here rather than in format() so the trace id precedes any traceback.
        line = f"{_iso_time(record)} {super().formatMessage(record)}"
        trace_id = getattr(record, "trace_id", None)
        return f"{line} [trace {trace_id}]" if trace_id else line


def _iso_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


def route_to_root(*names: str) -> None:
    """Make the named loggers hand their records to the root handler instead of their own.

    Use it for a library that installs its own handler, so its lines get our format and pass
    the PII filter. FastStream's module logger is routed by :func:`configure_logging`.
    """
    for name in names:
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            library_logger.removeHandler(handler)
        library_logger.propagate = True


def configure_logging(config: TelemetryConfig, *, stream: TextIO | None = None) -> logging.Handler:
    """Send all logging through one scrubbed, trace-tagged handler on the root logger.

    Safe to call again (for example after re-reading settings): the previous handler installed
    here is replaced, and handlers that others attached (such as pytest's) are left alone.
    Returns the handler so a caller can remove it.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(PiiScrubbingFilter())
    handler.addFilter(TraceContextFilter())
    if config.log_format == "json":
        handler.setFormatter(MomentJsonFormatter(config.service_name))
    else:
        handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(config.log_level)
    for name, level in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    route_to_root(*_SELF_HANDLING_LOGGERS)
    return handler
