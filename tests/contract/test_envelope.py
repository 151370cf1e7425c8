"""CloudEvents binary mode on Kafka: required attributes, subject as key, trace headers carried."""

from __future__ import annotations

import pytest

from moment_contracts.envelope import Envelope, EnvelopeError, from_kafka
from moment_contracts.identity import UserRegistered
from moment_contracts.registry import MessageRegistry, SchemaViolation, UnknownMessageType

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _event() -> Envelope:
    body = UserRegistered.model_validate(
        {
            "subject_id": "5f0c1f0e-6a57-4d5e-9f8b-1c2d3e4f5a6b",
            "status": "active",
            "locale": "ar",
            "registered_at": "2026-11-26T10:00:00Z",
        }
    )
    return Envelope.of(
        body,
        source="/moment/identity",
        subject=body.subject_id,
        extra={"traceparent": TRACEPARENT},
    )


def test_binary_mode_headers_carry_every_required_attribute() -> None:
    headers = dict(_event().headers())
    for name in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"):
        assert name in headers
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_type"] == b"moment.identity.user-registered.v1"
    assert headers["traceparent"] == TRACEPARENT.encode()


def test_round_trip_keeps_attributes_and_the_subject_is_the_key() -> None:
    event = _event()
    back = from_kafka(event.headers(), event.data)
    assert (back.id, back.type, back.source, back.subject) == (
        event.id,
        event.type,
        event.source,
        event.subject,
    )
    assert back.extra["traceparent"] == TRACEPARENT
    assert event.key == event.subject.encode()  # type: ignore[union-attr]


def test_missing_required_attribute_is_rejected() -> None:
    headers = [(k, v) for k, v in _event().headers() if k != "ce_source"]
    with pytest.raises(EnvelopeError):
        from_kafka(headers, b"{}")


def test_registry_decodes_known_types_and_refuses_others() -> None:
    registry = MessageRegistry([UserRegistered])
    event = _event()
    assert isinstance(registry.decode(event.type, event.data), UserRegistered)
    with pytest.raises(UnknownMessageType):
        registry.decode("moment.identity.user-registered.v2", event.data)
    with pytest.raises(SchemaViolation) as caught:
        registry.decode(event.type, b'{"subject_id": "secret-value", "status": "nope"}')
    assert "secret-value" not in str(caught.value)
