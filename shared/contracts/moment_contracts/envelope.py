"""CloudEvents 1.0 in Kafka binary mode: attributes in `ce_*` headers, the JSON body as the value.

The `cloudevents` SDK does the attribute-to-header mapping and validates required attributes; this
module adds what the SDK leaves to us: typed bodies, the subject as partition key, and the W3C trace
headers and request/reply headers that travel beside the CloudEvents attributes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from moment_contracts.base import Contract

CONTENT_TYPE = "application/json"
CORRELATION_ID = "correlation_id"
REPLY_TO = "reply_to"
TRACE_HEADERS = ("traceparent", "tracestate")
_FORMAT = JSONFormat()

KafkaHeaders = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """The Kafka record is not a valid binary-mode CloudEvent."""


@dataclass(frozen=True)
class Envelope:
    """One event or command on the wire. `subject` is a pseudonymous id, never personal data."""

    type: str
    source: str
    data: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subject: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    dataschema: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Contract, *, source: str, subject: str | None = None, **kw: Any) -> Envelope:
        return cls(
            type=body.ce_type,
            source=source,
            data=body.model_dump_json().encode(),
            subject=subject,
            dataschema=body.dataschema(),
            **kw,
        )

    @property
    def key(self) -> bytes | None:
        """Partition by subject, so every event about one person stays in order."""
        return self.subject.encode() if self.subject else None

    def headers(self) -> KafkaHeaders:
        attributes: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": CONTENT_TYPE,
        }
        if self.subject:
            attributes["subject"] = self.subject
        if self.dataschema:
            attributes["dataschema"] = self.dataschema
        message = ce_kafka.to_binary(CloudEvent(attributes=attributes, data=None), _FORMAT)
        headers = [(name, value) for name, value in message.headers.items()]
        headers.extend((name, value.encode()) for name, value in self.extra.items())
        return headers

    def header(self, name: str) -> str | None:
        return self.extra.get(name)


def headers_to_dict(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    try:
        return {name: value.decode() for name, value in headers}
    except UnicodeDecodeError as exc:
        raise EnvelopeError("a header is not valid UTF-8") from exc


def from_kafka(headers: Iterable[tuple[str, bytes]], value: bytes) -> Envelope:
    """Parse a consumed record. Raises EnvelopeError when required CloudEvents attributes are
    missing.

    """
    raw = headers_to_dict(headers)
    ce_headers = {
        k: v.encode() for k, v in raw.items() if k.startswith("ce_") or k == "content-type"
    }
    try:
        event = ce_kafka.from_binary(
            ce_kafka.KafkaMessage(headers=ce_headers, key=None, value=b""), _FORMAT
        )
    except Exception as exc:  # the SDK raises several unrelated types for bad attributes
        raise EnvelopeError(f"not a CloudEvent in binary mode: {type(exc).__name__}") from exc
    attributes = event.get_attributes()
    extra = {k: v for k, v in raw.items() if not k.startswith("ce_") and k != "content-type"}
    return Envelope(
        type=str(attributes["type"]),
        source=str(attributes["source"]),
        id=str(attributes["id"]),
        subject=attributes.get("subject"),
        time=attributes.get("time") or datetime.now(UTC),
        dataschema=attributes.get("dataschema"),
        data=value,
        extra=extra,
    )
