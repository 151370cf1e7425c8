"""How audit records map to OCSF: which class, activity, outcome, actor and resource each gets.

Whether the events are valid OCSF is checked against the published schema itself in
test_ocsf_schema.py; these tests pin down the mapping's own choices.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from moment_audit.domain.ocsf import (
    OCSF_VERSION,
    UnmappableAuditRecordError,
    epoch_ms,
    service_name,
    to_ocsf,
)
from moment_contracts.audit import Outcome, PersonalDataAccessed

# Keys that would hold a person's data in OCSF objects: none may ever appear.
PII_KEYS = {"email", "email_addr", "full_name", "display_name", "phone_number", "ldap_person",
            "password", "ip", "location", "data", "value", "values"}  # fmt: skip

ACTIONS = get_args(PersonalDataAccessed.model_fields["action"].annotation)
OUTCOMES = get_args(Outcome)
SOURCE = "/moment/identity"
WHEN = datetime(2026, 11, 26, 5, 30, 1, 234567, tzinfo=UTC)
API_ACTIVITIES = [("create", 1, "Create"), ("read", 2, "Read"), ("export", 2, "Read"),
                  ("write", 3, "Update"), ("erase", 4, "Delete")]  # fmt: skip


def record(action: str = "read", outcome: str = "success", **changes: Any) -> PersonalDataAccessed:
    fields: dict[str, Any] = {
        "action": action, "actor_id": "staff-7", "actor_role": "support-operator",
        "subject_id": "subj-123", "fields": ("email", "birth_date"), "purpose": "support",
        "outcome": outcome, "occurred_at": WHEN, "request_id": "req-1",
        "trace_id": "0af7651916cd43dd8448eb211c80319c", "source_ref": None,
    }  # fmt: skip
    return PersonalDataAccessed.model_validate(fields | changes)


def convert(event: PersonalDataAccessed) -> dict[str, Any]:
    return to_ocsf(event, source=SOURCE, event_id="ce-42", product_version="0.1.0")


def all_events() -> list[dict[str, Any]]:
    return [
        convert(record(action, outcome, source_ref="src-hash"))
        for action in ACTIONS
        for outcome in OUTCOMES
    ] + [
        convert(record(action, purpose=None, request_id=None, trace_id=None)) for action in ACTIONS
    ]


@pytest.mark.parametrize(("action", "activity_id", "activity_name"), API_ACTIVITIES)
def test_data_access_is_api_activity(action: str, activity_id: int, activity_name: str) -> None:
    event = convert(record(action))
    assert (event["class_uid"], event["category_uid"]) == (6003, 6)
    assert (event["activity_id"], event["activity_name"]) == (activity_id, activity_name)
    assert event["api"] == {"operation": action, "service": {"name": "identity"}}
    assert event["src_endpoint"] == {"name": "identity", "svc_name": SOURCE}
    assert event["actor"]["user"]["uid"] == "staff-7"
    [resource] = event["resources"]
    assert (resource["uid"], resource["type"]) == ("subj-123", "personal_data")
    assert resource["data_classifications"][0]["category"] == "Personal"


def test_login_and_recovery_are_authentication() -> None:
    login = convert(record("login", "success", actor_role="customer", source_ref="src-hash"))
    recovery = convert(record("recovery", "failure", actor_id="anonymous"))
    for event in (login, recovery):
        assert (event["class_uid"], event["category_uid"]) == (3002, 3)
        assert event["user"] == {"uid": "subj-123"}
        assert event["service"] == {"name": "identity"}
    assert (login["activity_id"], login["activity_name"], login["type_uid"]) == (1, "Logon", 300201)
    assert login["src_endpoint"] == {"uid": "src-hash"}
    assert recovery["activity_id"] == 99
    assert recovery["activity_name"] == "Password recovery"
    assert (recovery["type_uid"], recovery["type_name"]) == (300299, "Authentication: Other")
    assert recovery["actor"]["user"]["uid"] == "anonymous"
    assert "src_endpoint" not in recovery


@pytest.mark.parametrize(
    ("outcome", "severity_id", "status_id", "detail"),
    [("success", 1, 1, None), ("denied", 3, 2, "denied"), ("failure", 3, 2, None)],
)
@pytest.mark.parametrize("action", ["read", "login"])
def test_outcome_sets_status_and_severity(
    action: str, outcome: str, severity_id: int, status_id: int, detail: str | None
) -> None:
    event = convert(record(action, outcome))
    assert (event["severity_id"], event["status_id"]) == (severity_id, status_id)
    assert event.get("status_detail") == detail


def test_metadata_and_correlation() -> None:
    event = convert(record("read"))
    assert event["metadata"] == {
        "version": OCSF_VERSION,
        "product": {"name": "Moment privacy platform", "vendor_name": "Moment", "version": "0.1.0"},
        "uid": "ce-42",
        "correlation_uid": "req-1",
        "profiles": ["data_classification"],
    }
    assert event["time"] == 1_795_671_001_234
    assert event["unmapped"] == {
        "fields": ["email", "birth_date"],
        "actor_role": "support-operator",
        "purpose": "support",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }


def test_only_events_with_classified_resources_declare_the_profile() -> None:
    for action in ACTIONS:
        event = convert(record(action))
        classified = any("data_classifications" in r for r in event.get("resources", []))
        assert ("profiles" in event["metadata"]) == classified
        assert classified == (event["class_uid"] == 6003)


def test_absent_optionals_are_left_out_not_null() -> None:
    event = convert(record("read", purpose=None, request_id=None, trace_id=None, fields=()))
    assert "correlation_uid" not in event["metadata"]
    assert event["unmapped"] == {"fields": [], "actor_role": "support-operator"}
    assert None not in _leaves(event)


@pytest.mark.parametrize(
    ("role", "type_id"),
    [("customer", 1), ("service", 4), ("privacy-officer,admin", 2), ("legal-counsel", 1)],
)
def test_actor_role_maps_to_user_type(role: str, type_id: int) -> None:
    user = convert(record("read", actor_role=role))["actor"]["user"]
    assert user["type_id"] == type_id
    assert [g["name"] for g in user["groups"]] == role.split(",")


def test_time_is_exact_epoch_milliseconds() -> None:
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC)) == 0
    assert epoch_ms(WHEN.replace(tzinfo=None)) == epoch_ms(WHEN)
    plus_two = timezone(timedelta(hours=2))
    assert epoch_ms(WHEN.astimezone(plus_two)) == epoch_ms(WHEN)


def test_service_name_comes_from_the_cloudevents_source() -> None:
    assert service_name("/moment/consent") == "consent"
    assert service_name("/moment/identity/") == "identity"
    assert service_name("identity") == "identity"


def test_no_personal_data_keys_or_values_anywhere() -> None:
    for event in all_events():
        assert not _keys(event) & PII_KEYS
        # Every string comes from the record's ids and names or from the mapping's constants.
        assert "@" not in "".join(s for s in _leaves(event) if isinstance(s, str))


def test_same_input_same_output() -> None:
    first = json.dumps(all_events())
    assert json.dumps(all_events()) == first


def test_an_action_this_mapping_does_not_know_is_refused() -> None:
    future = PersonalDataAccessed.model_construct(**dict(record()) | {"action": "share"})
    with pytest.raises(UnmappableAuditRecordError, match="share"):
        convert(future)


def _flatten(value: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every (key, leaf value) pair, however deep."""
    if isinstance(value, dict):
        return [(key, value)] + [p for k, v in value.items() for p in _flatten(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in _flatten(v, key)]
    return [(key, value)]


def _keys(value: Any) -> set[str]:
    return {key for key, _ in _flatten(value)}


def _leaves(value: Any) -> list[Any]:
    return [leaf for _, leaf in _flatten(value) if not isinstance(leaf, dict)]
