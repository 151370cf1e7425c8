"""Audit records as OCSF events, checked against the parts of OCSF 1.8.0 they use.

The rules below are written by hand from the research notes on the formats security teams ingest
and the public OCSF documentation: the required attributes, enums and types of the two classes,
and nothing the mapping emits beyond them. (ocsf-lib ships no schema; fetching one at test time
is not allowed here.)
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

INT, STR, OBJECT, OBJECTS, JSON = "int", "str", "object", "array of objects", "json"
Names = frozenset[str]
NOTHING: Names = frozenset()

# Every event class requires these (OCSF base event).
BASE_REQUIRED = frozenset(
    {"class_uid", "category_uid", "activity_id", "type_uid", "severity_id", "time", "metadata"}
)
BASE_ATTRIBUTES = BASE_REQUIRED | {
    "class_name", "category_name", "activity_name", "type_name", "severity", "status_id",
    "status", "status_detail", "unmapped",
}  # fmt: skip
# class_uid -> (category_uid, activity_ids, required beyond the base event's, needs one of)
CLASSES: dict[int, tuple[int, frozenset[int], Names, Names]] = {
    # API Activity: 1 create, 2 read, 3 update, 4 delete (0 unknown, 99 other).
    6003: (6, frozenset({0, 1, 2, 3, 4, 99}), frozenset({"actor", "api", "src_endpoint"}), NOTHING),
    # Authentication: 1 logon ... 7 account switch (0 unknown, 99 other).
    3002: (3, frozenset({0, 1, 2, 3, 4, 5, 6, 7, 99}), frozenset({"user"}),
           frozenset({"service", "dst_endpoint"})),
}  # fmt: skip
NAME_OR_UID = frozenset({"name", "uid"})
USER_IDS = frozenset({"account", "name", "uid"})
ENDPOINT_IDS = frozenset({"ip", "uid", "name", "hostname", "svc_name"})
# object path -> (attributes it requires, attributes of which it needs at least one)
OBJECT_RULES: dict[str, tuple[Names, Names]] = {
    "metadata": (frozenset({"version", "product"}), NOTHING),
    "metadata.product": (NOTHING, NAME_OR_UID), "api": (frozenset({"operation"}), NOTHING),
    "actor": (NOTHING, frozenset({"user", "process", "session", "app_name", "app_uid"})),
    "actor.user": (NOTHING, USER_IDS), "actor.user.groups": (NOTHING, NAME_OR_UID),
    "user": (NOTHING, USER_IDS), "api.service": (NOTHING, NAME_OR_UID),
    "service": (NOTHING, NAME_OR_UID), "src_endpoint": (NOTHING, ENDPOINT_IDS),
    "dst_endpoint": (NOTHING, ENDPOINT_IDS), "resources": (NOTHING, NAME_OR_UID),
    "resources.data_classifications": (NOTHING, frozenset({"category_id", "confidentiality_id"})),
}  # fmt: skip
# attribute path (arrays without an index) -> the type of its values; nothing else may appear.
_ENDPOINT = {"ip": STR, "uid": STR, "name": STR, "hostname": STR, "svc_name": STR}
_USER = {"uid": STR, "name": STR, "type_id": INT, "type": STR, "groups": OBJECTS}
TYPES: dict[str, str] = {
    **dict.fromkeys(BASE_ATTRIBUTES - {"metadata", "unmapped"}, STR),
    **dict.fromkeys(["class_uid", "category_uid", "activity_id", "type_uid"], INT),
    **dict.fromkeys(["severity_id", "status_id", "time"], INT),
    "metadata": OBJECT, "metadata.version": STR, "metadata.uid": STR,
    "metadata.correlation_uid": STR, "metadata.product": OBJECT, "metadata.product.name": STR,
    "metadata.product.uid": STR, "metadata.product.vendor_name": STR,
    "metadata.product.version": STR, "unmapped": JSON,
    "actor": OBJECT, "actor.user": OBJECT, **{f"actor.user.{k}": v for k, v in _USER.items()},
    "actor.user.groups.name": STR, "actor.user.groups.type": STR,
    "user": OBJECT, **{f"user.{k}": v for k, v in _USER.items() if k != "groups"},
    "api": OBJECT, "api.operation": STR, "api.service": OBJECT, "api.service.name": STR,
    "service": OBJECT, "service.name": STR, "service.uid": STR,
    "src_endpoint": OBJECT, **{f"src_endpoint.{k}": v for k, v in _ENDPOINT.items()},
    "dst_endpoint": OBJECT, **{f"dst_endpoint.{k}": v for k, v in _ENDPOINT.items()},
    "resources": OBJECTS, "resources.uid": STR, "resources.name": STR, "resources.type": STR,
    "resources.data_classifications": OBJECTS,
    "resources.data_classifications.category_id": INT,
    "resources.data_classifications.category": STR,
    "resources.data_classifications.confidentiality_id": INT,
    "resources.data_classifications.confidentiality": STR,
}  # fmt: skip
_USER_TYPE_IDS = frozenset({0, 1, 2, 3, 4, 99})  # unknown, user, admin, system, service, other
_ZERO_TO_SIX = frozenset({0, 1, 2, 3, 4, 5, 6, 99})
ENUMS: dict[str, frozenset[int]] = {
    "severity_id": _ZERO_TO_SIX,  # unknown, informational, low, medium, high, critical, fatal
    "status_id": frozenset({0, 1, 2, 99}),  # unknown, success, failure, other
    "actor.user.type_id": _USER_TYPE_IDS, "user.type_id": _USER_TYPE_IDS,
    "resources.data_classifications.category_id": _ZERO_TO_SIX,  # 1 personal
    "resources.data_classifications.confidentiality_id": _ZERO_TO_SIX,  # 5 private
}  # fmt: skip
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


# --- the checkers ------------------------------------------------------------------------------


def violations(event: dict[str, Any]) -> list[str]:
    uid = event.get("class_uid")
    if not isinstance(uid, int) or uid not in CLASSES:
        return [f"class_uid: unknown {uid!r}"]
    category_uid, activity_ids, required, one_of = CLASSES[uid]
    found = _needs(event, BASE_REQUIRED | required, one_of, "event")
    if event.get("category_uid") != category_uid:
        found.append(f"category_uid: not {category_uid}")
    activity_id = event.get("activity_id")
    if activity_id not in activity_ids:
        found.append(f"activity_id: {activity_id} not in enum")
    if not isinstance(activity_id, int) or event.get("type_uid") != uid * 100 + activity_id:
        found.append("type_uid: not class_uid * 100 + activity_id")
    return found + _walk(event, "")


def _needs(value: dict[str, Any], required: Names, one_of: Names, path: str) -> list[str]:
    where = "" if path == "event" else f"{path}."
    found = [f"{where}{name}: required" for name in sorted(required - value.keys())]
    if one_of and not one_of & value.keys():
        found.append(f"{path}: needs one of {sorted(one_of)}")
    return found


def _walk(value: dict[str, Any], prefix: str) -> list[str]:
    found: list[str] = []
    for key, item in value.items():
        path = prefix + key
        kind = TYPES.get(path)
        if kind is None:
            found.append(f"{path}: not a known attribute")
        elif kind == OBJECTS and not isinstance(item, list):
            found.append(f"{path}: not an array")
        elif kind in {OBJECT, OBJECTS}:
            for one in item if kind == OBJECTS else [item]:
                found += _object(one, path)
        elif not _is(kind, item):
            found.append(f"{path}: not a {kind}")
        elif path in ENUMS and item not in ENUMS[path]:
            found.append(f"{path}: {item} not in enum")
    return found


def _object(value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: not an object"]
    required, one_of = OBJECT_RULES.get(path, (NOTHING, NOTHING))
    return _needs(value, required, one_of, path) + _walk(value, f"{path}.")


def _is(kind: str, value: Any) -> bool:
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {STR: str, "bool": bool}.get(kind, dict))


def test_the_checker_catches_what_it_should() -> None:
    event = convert(record("read"))
    broken = {k: v for k, v in event.items() if k != "src_endpoint"}
    broken |= {"activity_id": 7, "email": "x", "time": "soon"}
    broken["api"] = {"service": {"name": "identity"}}
    found = violations(broken)
    assert "src_endpoint: required" in found
    assert "api.operation: required" in found
    assert "activity_id: 7 not in enum" in found
    assert "email: not a known attribute" in found
    assert "time: not a int" in found
    assert "resources: not an array" in violations(event | {"resources": event["resources"][0]})
    login = convert(record("login"))
    login_broken = {k: v for k, v in login.items() if k != "service"} | {"severity_id": 9}
    login_broken["actor"] = {"user": {"type_id": 1}}
    found = violations(login_broken)
    assert "event: needs one of ['dst_endpoint', 'service']" in found
    assert "actor.user: needs one of ['account', 'name', 'uid']" in found
    assert "severity_id: 9 not in enum" in found
    assert violations(login | {"class_uid": 4001}) == ["class_uid: unknown 4001"]


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_and_outcome_validates(action: str, outcome: str) -> None:
    for source_ref in (None, "src-hash"):
        event = convert(record(action, outcome, source_ref=source_ref))
        assert violations(event) == []
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["metadata"]["version"] == OCSF_VERSION


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
    assert recovery["type_uid"] == 300299
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
    }
    assert event["time"] == 1_795_671_001_234
    assert event["unmapped"] == {
        "fields": ["email", "birth_date"],
        "actor_role": "support-operator",
        "purpose": "support",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }


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
