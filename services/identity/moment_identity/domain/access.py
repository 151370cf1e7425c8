"""Who may read which personal fields, and why: the role x purpose x field policy (P2.1, P2.2).

P2.1 allows two purposes only, "store-quality" and "user-dealings"; P2.3 adds disclosure to the
authorities, which needs an approved legal case. P2.2 limits sight to Moment's operators, so each
staff role sees the fields its work needs and no more. A person may always read their own data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Purpose = Literal["store-quality", "user-dealings", "legal-disclosure"]
PURPOSES: tuple[Purpose, ...] = ("store-quality", "user-dealings", "legal-disclosure")
READABLE_FIELDS = frozenset({"name", "age", "email", "username", "recovery_question"})
_ALL = READABLE_FIELDS
_CONTACT = frozenset({"name", "email", "username"})

# role -> purpose -> fields. Anything absent is denied.
POLICY: dict[str, dict[str, frozenset[str]]] = {
    "support-operator": {"user-dealings": _CONTACT, "store-quality": frozenset({"age"})},
    "privacy-officer": {"user-dealings": _ALL, "store-quality": frozenset({"age"})},
    "legal-counsel": {"legal-disclosure": _ALL},
    "admin": {"user-dealings": frozenset({"username", "email"})},
    "security-analyst": {},
    "service:storefront": {"user-dealings": frozenset({"name", "email"})},
    "service:consent": {"user-dealings": frozenset({"email"})},
}


@dataclass(frozen=True)
class AccessRequest:
    principal_id: str
    kind: Literal["customer", "staff", "service"]
    roles: tuple[str, ...]
    subject_id: str
    fields: frozenset[str]
    purpose: str | None
    approved_case: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    denied_fields: frozenset[str] = frozenset()


def decide(request: AccessRequest) -> Decision:
    unknown = request.fields - READABLE_FIELDS
    if unknown or not request.fields:
        return Decision(False, "unknown-field", unknown)
    if request.kind == "customer":
        return _own(request)
    if request.purpose not in PURPOSES:
        return Decision(False, "purpose-required", request.fields)
    if request.purpose == "legal-disclosure" and not request.approved_case:
        return Decision(False, "case-not-approved", request.fields)
    allowed = _allowed_fields(request)
    denied = request.fields - allowed
    return Decision(not denied, "policy" if not denied else "field-not-allowed", denied)


def _allowed_fields(request: AccessRequest) -> frozenset[str]:
    roles = (
        request.roles if request.kind == "staff" else tuple(f"service:{r}" for r in request.roles)
    )
    allowed: frozenset[str] = frozenset()
    for role in roles:
        allowed |= POLICY.get(role, {}).get(str(request.purpose), frozenset())
    return allowed


# Rectification: who may change which fields (customers may always change their own).
WRITE_POLICY: dict[str, dict[str, frozenset[str]]] = {
    "support-operator": {"user-dealings": _CONTACT},
    "privacy-officer": {"user-dealings": _ALL},
}
# Export and erasure act on everything: only the person, or the privacy officer on their behalf.
RIGHTS_ROLES = frozenset({"privacy-officer"})


def decide_write(request: AccessRequest) -> Decision:
    unknown = request.fields - READABLE_FIELDS
    if unknown or not request.fields:
        return Decision(False, "unknown-field", unknown)
    if request.kind == "customer":
        return _own(request)
    allowed: frozenset[str] = frozenset()
    if request.kind == "staff":
        for role in request.roles:
            allowed |= WRITE_POLICY.get(role, {}).get(str(request.purpose), frozenset())
    denied = request.fields - allowed
    return Decision(not denied, "policy" if not denied else "field-not-allowed", denied)


def decide_rights(request: AccessRequest) -> Decision:
    """Export and erasure of a whole subject."""
    if request.kind == "customer":
        return _own(request)
    if request.kind == "staff" and RIGHTS_ROLES.intersection(request.roles):
        return Decision(True, "privacy-officer")
    return Decision(False, "role-not-allowed", request.fields)


def _own(request: AccessRequest) -> Decision:
    own = request.principal_id == request.subject_id
    return Decision(own, "self" if own else "not-own-data", frozenset() if own else request.fields)
