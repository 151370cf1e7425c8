"""The OCSF follow-up's body is the bytes pydantic would write for it, without the round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from moment_audit.domain.ocsf import to_ocsf
from moment_audit.service.streams import ocsf_body, ocsf_message
from moment_contracts.audit import OcsfEvent, Outcome, PersonalDataAccessed
from moment_contracts.envelope import Envelope

ACTIONS = get_args(PersonalDataAccessed.model_fields["action"].annotation)
ODD_TEXT = ('quote " back \\ slash', "tab\t nl\n cr\r bell\x07 del\x7f", "é 日本 😀 \u2028", "")


def _event(action: str, outcome: str, text: str, **changes: Any) -> PersonalDataAccessed:
    fields: dict[str, Any] = {
        "action": action,
        "actor_id": f"actor {text}",
        "actor_role": f"admin,{text},customer",
        "subject_id": f"subject {text}",
        "fields": ("email", text),
        "purpose": text or None,
        "outcome": outcome,
        "occurred_at": datetime(2026, 11, 26, 5, 30, 1, 234567, tzinfo=UTC),
        "request_id": text or None,
        "trace_id": "0af7651916cd43dd8448eb211c80319c" if text else None,
        "source_ref": f"ref {text}"[:80] if text else None,
        "producer_seq": 7 if text else None,
    }
    return PersonalDataAccessed.model_validate(fields | changes)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("outcome", get_args(Outcome))
@pytest.mark.parametrize("text", ODD_TEXT)
def test_the_body_is_pydantics(action: str, outcome: str, text: str) -> None:
    ocsf = to_ocsf(
        _event(action, outcome, text), source=f"/moment/{text}", event_id=f"id {text}",
        product_version="0.1.0",
    )  # fmt: skip
    assert ocsf_body(ocsf) == OcsfEvent.model_validate(ocsf).model_dump_json().encode()


def test_the_message_is_the_one_envelope_of_would_build() -> None:
    event = _event("read", "success", "x")
    incoming = Envelope(type=event.ce_type, source="/moment/identity", data=b"{}", id="e-1")
    message = ocsf_message(incoming, event)
    ocsf = to_ocsf(event, source="/moment/identity", event_id="e-1", product_version="0.1.0")
    expected = Envelope.of(
        OcsfEvent.model_validate(ocsf), source="/moment/audit", subject=event.subject_id
    )
    sent = message.envelope
    assert (sent.type, sent.source, sent.data, sent.subject, sent.dataschema, sent.extra) == (
        expected.type, expected.source, expected.data, expected.subject, expected.dataschema,
        expected.extra,
    )  # fmt: skip
    assert message.topic == "audit.ocsf"
