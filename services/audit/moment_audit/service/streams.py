"""What a stored audit record sets off: its OCSF form on audit.ocsf for the SIEM, and whatever
the detection rules raise on audit.alerts. Both go through the outbox, in the transaction that
stores the record: neither is published for a record that was not kept, nor lost for one that was.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from moment_audit.domain.ocsf import to_ocsf
from moment_audit.domain.rules import DetectionEngine
from moment_contracts import topics
from moment_contracts.alerts import AlertRaised
from moment_contracts.audit import OcsfEvent, PersonalDataAccessed
from moment_contracts.envelope import Envelope
from moment_messaging.outbox import OutboxMessage

SOURCE = "/moment/audit"
PRODUCT_VERSION = "0.1.0"


# OcsfEvent's own fields come first in its JSON, then the rest in the mapping's order.
_OCSF_FIELDS = tuple(OcsfEvent.model_fields)
_OCSF_SCHEMA = OcsfEvent.dataschema()
# pydantic's own JSON writer (what model_dump_json uses), for a plain mapping.
_JSON: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def ocsf_body(ocsf: dict[str, Any]) -> bytes:
    """OcsfEvent.model_validate(ocsf).model_dump_json(), without the model in between: to_ocsf's
    types already are OcsfEvent's (tests/audit/unit/test_ocsf_body.py compares the bytes)."""
    ordered = {name: ocsf[name] for name in _OCSF_FIELDS}
    ordered.update(ocsf)
    return _JSON.dump_json(ordered)


def ocsf_message(envelope: Envelope, event: PersonalDataAccessed) -> OutboxMessage:
    ocsf = to_ocsf(
        event, source=envelope.source, event_id=envelope.id, product_version=PRODUCT_VERSION
    )
    body = Envelope(
        type=OcsfEvent.ce_type,
        source=SOURCE,
        data=ocsf_body(ocsf),
        subject=event.subject_id,
        dataschema=_OCSF_SCHEMA,
    )
    return OutboxMessage(topics.AUDIT_OCSF, body)


def alert_messages(alerts: list[AlertRaised]) -> list[OutboxMessage]:
    return [
        OutboxMessage(
            topics.AUDIT_ALERTS,
            # The alert id is deterministic, so a replay raises the same event id: consumers dedupe.
            Envelope.of(alert, source=SOURCE, subject=alert.subject_id, id=alert.alert_id),
        )
        for alert in alerts
    ]


def follow_ups(
    envelope: Envelope, event: PersonalDataAccessed, engine: DetectionEngine | None
) -> list[OutboxMessage]:
    """Gaps and repeats in the producer's numbering are the watch's (service/watch.py): it judges
    them from the store, across instances and restarts, rather than from one instance's stream."""
    messages = [ocsf_message(envelope, event)]
    if engine is not None:
        messages.extend(alert_messages(engine.observe(event)))
    return messages
