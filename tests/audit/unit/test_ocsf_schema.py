"""Every OCSF event the audit service emits, validated against the published OCSF schema.

The schema is OCSF's own compiled export of the version we emit, as bundled by the
`ocsf-json-schema` package (pinned; nothing is fetched at test time). That package turns a class
into a JSON Schema (2020-12), which `jsonschema` checks: the required attributes at every depth,
types and the types' patterns, the enums (class_uid, category_uid, activity_id, type_uid,
severity_id, status_id and the objects' own), the at-least-one constraints, and no attribute that
the class or object does not define (`unmapped` is OCSF's one free-form object). Attributes of a
profile count only when `metadata.profiles` names it. What JSON Schema cannot say is checked by
walking the same schema: each enum's label is the schema's caption, type_uid is class_uid * 100
+ activity_id, and no attribute is deprecated.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from ocsf_json_schema import (  # type: ignore[import-untyped]
    OcsfJsonSchemaEmbedded,
    get_ocsf_schema,
    get_packaged_versions,
)

from moment_audit.domain.ocsf import OCSF_VERSION, OTHER_ACTIVITY
from moment_contracts.audit import OcsfEvent
from tests.audit.unit.test_ocsf import ACTIONS, OUTCOMES, convert, record

SCHEMA: dict[str, Any] = get_ocsf_schema(version=OCSF_VERSION)
CLASSES = OcsfJsonSchemaEmbedded(SCHEMA)


@cache
def validator(class_uid: int, profiles: tuple[str, ...]) -> Any:
    name = CLASSES.lookup_class_name_from_uid(class_uid)
    schema = CLASSES.get_class_schema(name, list(profiles))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(event: dict[str, Any]) -> list[str]:
    profiles = tuple(event.get("metadata", {}).get("profiles", ()))
    try:
        checker = validator(event["class_uid"], profiles)
    except (KeyError, TypeError, ValueError) as error:
        return [f"class_uid: {error}"]
    return sorted(f"{e.json_path}: {e.message}" for e in checker.iter_errors(event))


def label_errors(event: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if event["type_uid"] != event["class_uid"] * 100 + event["activity_id"]:
        found.append("type_uid: not class_uid * 100 + activity_id")
    name = CLASSES.lookup_class_name_from_uid(event["class_uid"])
    return found + _walk(event, SCHEMA["classes"][name]["attributes"], "")


def _walk(value: dict[str, Any], attributes: dict[str, Any], prefix: str) -> list[str]:
    found: list[str] = []
    for key, item in value.items():
        attribute = attributes.get(key)
        if attribute is None:
            continue  # an unknown attribute is the JSON Schema's to report
        if "@deprecated" in attribute:
            found.append(f"{prefix}{key}: deprecated")
        found += _label(value, key, attribute, prefix)
        object_type = attribute.get("object_type")
        if object_type is None:
            continue
        nested = SCHEMA["objects"][object_type].get("attributes", {})
        for one in item if attribute.get("is_array") else [item]:
            if isinstance(one, dict):
                found += _walk(one, nested, f"{prefix}{key}.")
    return found


def _label(value: dict[str, Any], key: str, attribute: dict[str, Any], prefix: str) -> list[str]:
    """An enum's sibling (activity_id -> activity_name, ...) must read as the schema's caption."""
    sibling, enum = attribute.get("sibling"), attribute.get("enum")
    if not sibling or not enum or sibling not in value:
        return []
    entry = enum.get(str(value[key]))
    # Out of the enum is the JSON Schema's to report; for "Other" the label is the source's own.
    if entry is None or value[key] == OTHER_ACTIVITY:
        return []
    if value[sibling] == entry["caption"]:
        return []
    return [f"{prefix}{sibling}: {value[sibling]!r} is not {entry['caption']!r}"]


def published(event: dict[str, Any]) -> dict[str, Any]:
    """The body as it goes on audit.ocsf: through the contract and JSON."""
    body: dict[str, Any] = json.loads(OcsfEvent.model_validate(event).model_dump_json())
    return body


def test_the_bundled_schema_is_the_version_we_emit() -> None:
    assert OCSF_VERSION in get_packaged_versions()
    assert SCHEMA["version"] == OCSF_VERSION
    assert CLASSES.lookup_class_name_from_uid(6003) == "api_activity"
    assert CLASSES.lookup_class_name_from_uid(3002) == "authentication"


@pytest.mark.parametrize("optionals", ["all", "none"])
@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_event_we_emit_is_valid_ocsf(action: str, outcome: str, optionals: str) -> None:
    changes: dict[str, Any] = {"source_ref": "src-hash", "actor_role": "service,admin"}
    if optionals == "none":
        changes = {"purpose": None, "request_id": None, "trace_id": None, "fields": ()}
        changes |= {"actor_role": "", "actor_id": "anonymous"}
    event = published(convert(record(action, outcome, **changes)))
    assert schema_errors(event) == []
    assert label_errors(event) == []
    assert event["metadata"]["version"] == SCHEMA["version"]


def broken(action: str, change: Any) -> dict[str, Any]:
    event = copy.deepcopy(convert(record(action, "denied", source_ref="src-hash")))
    change(event)
    return event


def _unknown(event: dict[str, Any]) -> None:
    event["email"] = "x"
    event["actor"]["user"]["favourite_colour"] = "x"


# (the change, the JSON path of the error it must raise, a part of that error's message)
SCHEMA_BREAKS = [
    ("read", lambda e: e.pop("time"), "$", "'time' is a required property"),
    ("read", lambda e: e["metadata"].pop("product"), "$.metadata", "'product' is a required"),
    ("read", lambda e: e["api"].pop("operation"), "$.api", "'operation' is a required"),
    ("login", lambda e: e.pop("user"), "$", "'user' is a required property"),
    ("read", _unknown, "$", "Additional properties are not allowed ('email' was unexpected)"),
    ("read", _unknown, "$.actor.user", "('favourite_colour' was unexpected)"),
    ("read", lambda e: e.update(activity_id=7), "$.activity_id", "7 is not one of"),
    ("login", lambda e: e.update(activity_id=8), "$.activity_id", "8 is not one of"),
    ("read", lambda e: e.update(type_uid=300201), "$.type_uid", "300201 is not one of"),
    ("read", lambda e: e.update(category_uid=3), "$.category_uid", "6 was expected"),
    ("read", lambda e: e.update(severity_id=9), "$.severity_id", "9 is not one of"),
    ("read", lambda e: e.update(status_id=3), "$.status_id", "3 is not one of"),
    ("read", lambda e: e.update(time="soon"), "$.time", "'soon' is not of type 'integer'"),
    ("read", lambda e: e.update(class_uid=6999), "class_uid", "No class found for uid 6999"),
    ("read", lambda e: e.update(resources={}), "$.resources", "{} is not of type 'array'"),
    (
        "read",
        lambda e: e["actor"].update(user={"type_id": 1}),
        "$.actor.user",
        "not valid under any",
    ),
    ("read", lambda e: e["src_endpoint"].clear(), "$.src_endpoint", "not valid under any"),
    ("login", lambda e: e.pop("service"), "$", "is not valid under any of the given schemas"),
    (
        "read",
        lambda e: e["metadata"].pop("profiles"),
        "$.resources[0]",
        "('data_classifications' was unexpected)",
    ),
]


@pytest.mark.parametrize(("action", "change", "path", "message"), SCHEMA_BREAKS)
def test_the_schema_check_catches_what_it_should(
    action: str, change: Any, path: str, message: str
) -> None:
    errors = [error.split(": ", 1) for error in schema_errors(broken(action, change))]
    assert any(where == path and message in what for where, what in errors), errors
    assert schema_errors(broken(action, lambda e: None)) == []


LABEL_BREAKS = [
    ("read", lambda e: e.update(activity_name="Reed"), "activity_name: 'Reed' is not 'Read'"),
    ("read", lambda e: e.update(class_name="API"), "class_name: 'API' is not 'API Activity'"),
    ("login", lambda e: e.update(category_name="IAM"), "category_name: 'IAM' is not 'Identity"),
    ("read", lambda e: e.update(severity="Low"), "severity: 'Low' is not 'Medium'"),
    ("read", lambda e: e.update(status="Denied"), "status: 'Denied' is not 'Failure'"),
    ("read", lambda e: e.update(type_name="API: Read"), "type_name: 'API: Read' is not 'API "),
    (
        "recovery",
        lambda e: e.update(type_name="Authentication: Password recovery"),
        "type_name: 'Authentication: Password recovery' is not 'Authentication: Other'",
    ),
    ("read", lambda e: e["actor"]["user"].update(type="Admin"), "actor.user.type: 'Admin' is"),
    (
        "read",
        lambda e: e["resources"][0]["data_classifications"][0].update(category="Financial"),
        "resources.data_classifications.category: 'Financial' is not 'Personal'",
    ),
    ("read", lambda e: e.update(type_uid=600303), "type_uid: not class_uid * 100 + activity_id"),
    (
        "read",
        lambda e: e["resources"][0].update(data_classification={"category_id": 1}),
        "resources.data_classification: deprecated",
    ),
]


@pytest.mark.parametrize(("action", "change", "expected"), LABEL_BREAKS)
def test_the_label_check_catches_what_it_should(action: str, change: Any, expected: str) -> None:
    assert any(error.startswith(expected) for error in label_errors(broken(action, change)))
    assert label_errors(broken(action, lambda e: None)) == []
