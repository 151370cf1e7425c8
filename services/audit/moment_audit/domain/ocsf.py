"""Audit records as OCSF 1.8.0 events for the security team's SIEM stream (`audit.ocsf`).

Data access maps to API Activity (6003), logins and password recovery to Authentication (3002).
A pure mapping: no I/O, and the same record always gives the same event. Like the record it
comes from, an event carries pseudonymous ids and field names only, never a personal data value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from moment_contracts.audit import PersonalDataAccessed

OCSF_VERSION: Final = "1.8.0"
PRODUCT_NAME: Final = "Moment privacy platform"
VENDOR_NAME: Final = "Moment"
RESOURCE_TYPE: Final = "personal_data"
RECOVERY_ACTIVITY_NAME: Final = "Password recovery"

API_ACTIVITY_CLASS: Final = 6003
AUTHENTICATION_CLASS: Final = 3002
OTHER_ACTIVITY: Final = 99
OTHER_CAPTION: Final = "Other"
# OCSF puts resources' data_classifications in this profile, so an event carrying them declares it.
DATA_CLASSIFICATION_PROFILE: Final = "data_classification"

_CLASSES: Final = {
    API_ACTIVITY_CLASS: ("API Activity", 6, "Application Activity"),
    AUTHENTICATION_CLASS: ("Authentication", 3, "Identity & Access Management"),
}
_PROFILES: Final[dict[int, tuple[str, ...]]] = {
    API_ACTIVITY_CLASS: (DATA_CLASSIFICATION_PROFILE,),
    AUTHENTICATION_CLASS: (),
}
# Export reads data out, so OCSF sees a read; api.operation keeps the "export" for analysts.
_API_ACTIVITIES: Final = {
    "create": (1, "Create"),
    "read": (2, "Read"),
    "export": (2, "Read"),
    "write": (3, "Update"),
    "erase": (4, "Delete"),
}
# OCSF's Authentication enum has no recovery activity; 99 "Other" with a name is its escape hatch
# (activity_name carries the name, type_name stays the type_uid's own caption, "...: Other").
_AUTH_ACTIVITIES: Final = {
    "login": (1, "Logon"),
    "recovery": (OTHER_ACTIVITY, RECOVERY_ACTIVITY_NAME),
}
# One refusal or failure is worth a look, not an incident: the detection rules on audit.alerts
# raise patterns (stuffing, bulk reads) higher. Success is the routine case.
_SEVERITY: Final = {
    "success": (1, "Informational"),
    "denied": (3, "Medium"),
    "failure": (3, "Medium"),
}
_STATUS: Final = {"success": (1, "Success"), "denied": (2, "Failure"), "failure": (2, "Failure")}
# Data classification for every resource: the record is about a person's data, by definition.
_PERSONAL_DATA: Final = {
    "category_id": 1,
    "category": "Personal",
    "confidentiality_id": 5,
    "confidentiality": "Private",
}
_USER_TYPES: Final = {"customer": (1, "User"), "service": (4, "Service"), "admin": (2, "Admin")}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class UnmappableAuditRecordError(ValueError):
    """The record's action has no OCSF class here (a newer contract than this mapping knows)."""

    def __init__(self, action: str) -> None:
        super().__init__(f"no OCSF mapping for audit action {action!r}")
        self.action = action


def to_ocsf(
    event: PersonalDataAccessed, *, source: str, event_id: str, product_version: str
) -> dict[str, Any]:
    """The OCSF event for one audit record; `source` and `event_id` are its CloudEvents ones."""
    if event.action in _API_ACTIVITIES:
        class_uid = API_ACTIVITY_CLASS
        activity_id, activity_name = _API_ACTIVITIES[event.action]
        specific = _api_activity(event, source)
    elif event.action in _AUTH_ACTIVITIES:
        class_uid = AUTHENTICATION_CLASS
        activity_id, activity_name = _AUTH_ACTIVITIES[event.action]
        specific = _authentication(event, source)
    else:
        raise UnmappableAuditRecordError(event.action)
    class_name, category_uid, category_name = _CLASSES[class_uid]
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": _type_name(class_name, activity_id, activity_name),
        "time": epoch_ms(event.occurred_at),
        **_outcome(event),
        "metadata": _metadata(event, event_id, product_version, _PROFILES[class_uid]),
        "actor": _actor(event),
        **specific,
        "unmapped": _unmapped(event),
    }


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding); naive times are taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def service_name(source: str) -> str:
    """The emitting service from a CloudEvents source such as `/moment/identity`."""
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def _type_name(class_name: str, activity_id: int, activity_name: str) -> str:
    caption = OTHER_CAPTION if activity_id == OTHER_ACTIVITY else activity_name
    return f"{class_name}: {caption}"


def _outcome(event: PersonalDataAccessed) -> dict[str, Any]:
    severity_id, severity = _SEVERITY[event.outcome]
    status_id, status = _STATUS[event.outcome]
    fields: dict[str, Any] = {
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
    }
    # OCSF has no "denied" status; the detail keeps a refusal apart from a failure.
    if event.outcome == "denied":
        fields["status_detail"] = "denied"
    return fields


def _metadata(
    event: PersonalDataAccessed, event_id: str, product_version: str, profiles: tuple[str, ...]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": product_version},
        "uid": event_id,
    }
    if profiles:
        metadata["profiles"] = list(profiles)
    if event.request_id is not None:
        metadata["correlation_uid"] = event.request_id
    return metadata


def _actor(event: PersonalDataAccessed) -> dict[str, Any]:
    roles = [role for role in event.actor_role.split(",") if role]
    type_id, type_name = _user_type(roles)
    user: dict[str, Any] = {"uid": event.actor_id, "type_id": type_id, "type": type_name}
    if roles:
        user["groups"] = [{"name": role, "type": "role"} for role in roles]
    return {"user": user}


def _user_type(roles: list[str]) -> tuple[int, str]:
    for role in ("admin", "service", "customer"):
        if role in roles:
            return _USER_TYPES[role]
    # Staff roles (support-operator, privacy-officer...) are people, just not admins.
    return _USER_TYPES["customer"] if roles else (0, "Unknown")


def _api_activity(event: PersonalDataAccessed, source: str) -> dict[str, Any]:
    return {
        "api": {"operation": event.action, "service": {"name": service_name(source)}},
        "src_endpoint": _endpoint(event, service=source),
        "resources": [
            {
                "uid": event.subject_id,
                "type": RESOURCE_TYPE,
                "data_classifications": [dict(_PERSONAL_DATA)],
            }
        ],
    }


def _authentication(event: PersonalDataAccessed, source: str) -> dict[str, Any]:
    specific: dict[str, Any] = {
        # The account being authenticated or recovered: the subject, even when the actor is
        # still "anonymous" (an unknown identifier or a failed attempt).
        "user": {"uid": event.subject_id},
        "service": {"name": service_name(source)},
    }
    if event.source_ref is not None:
        specific["src_endpoint"] = _endpoint(event)
    return specific


def _endpoint(event: PersonalDataAccessed, *, service: str | None = None) -> dict[str, Any]:
    # source_ref is a keyed hash of the caller's address: an endpoint id that groups attempts
    # without the SIEM ever holding the address itself.
    endpoint: dict[str, Any] = {}
    if service is not None:
        # svc_name alone satisfies the schema's at-least-one constraint; name is the short name
        # a SIEM shows, the same one api.service and service carry.
        endpoint["name"] = service_name(service)
        endpoint["svc_name"] = service
    if event.source_ref is not None:
        endpoint["uid"] = event.source_ref
    return endpoint


def _unmapped(event: PersonalDataAccessed) -> dict[str, Any]:
    unmapped: dict[str, Any] = {"fields": list(event.fields), "actor_role": event.actor_role}
    if event.purpose is not None:
        unmapped["purpose"] = event.purpose
    # metadata.extensions lists schema extensions, not values, so the trace id lives here.
    if event.trace_id is not None:
        unmapped["trace_id"] = event.trace_id
    return unmapped
