"""What an audit record keeps of a request id nobody validated: it always fits, never fails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moment_contracts.audit import PersonalDataAccessed
from moment_identity.service.unit_of_work import audit_event, request_ref


def test_a_short_visible_id_is_kept_as_sent() -> None:
    assert request_ref("3f1c-42/ab:1") == "3f1c-42/ab:1"


@pytest.mark.parametrize("request_id", ["x" * 129, "a\x00b", "with space", "ٮ", "\ud800", ""])
def test_anything_else_is_kept_as_its_digest(request_id: str) -> None:
    kept = request_ref(request_id)
    assert kept.startswith("sha256:")
    assert len(kept) == len("sha256:") + 64


@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=600))
def test_every_request_id_makes_a_valid_audit_event(request_id: str) -> None:
    event = audit_event(
        action="login",
        subject_id="unknown",
        actor_id="anonymous",
        actor_role="customer",
        fields=("password",),
        outcome="failure",
        purpose=None,
        request_id=request_id,
    )
    assert PersonalDataAccessed.model_validate_json(event.model_dump_json()) == event
