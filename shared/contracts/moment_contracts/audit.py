"""Audit contracts (v1): who touched whose personal data, which fields, why, and what happened.

Field names only, never values: an audit record must be safe to hand to a SIEM.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from moment_contracts.base import Contract, Timestamp

Outcome = Literal["success", "denied", "failure"]


class PersonalDataAccessed(Contract):
    ce_type: ClassVar[str] = "moment.audit.personal-data-accessed.v1"

    action: Literal["read", "write", "create", "export", "erase", "login", "recovery"]
    actor_id: str = Field(max_length=128)
    actor_role: str = Field(max_length=64)
    subject_id: str = Field(max_length=128)
    fields: tuple[str, ...] = ()
    purpose: str | None = Field(default=None, max_length=64)
    outcome: Outcome
    occurred_at: Timestamp
    request_id: str | None = Field(default=None, max_length=128)
    trace_id: str | None = Field(default=None, max_length=32)
    # Keyed hash of where a login or recovery attempt came from: lets detection rules group
    # attempts by source without the audit trail holding an IP address.
    source_ref: str | None = Field(default=None, max_length=80)
    # Per producer (the CloudEvents source), 1, 2, 3... with no holes: audit alerts on a number
    # that never arrives or arrives twice. None from producers that do not stamp one.
    producer_seq: int | None = Field(default=None, ge=1)


class OcsfEvent(Contract):
    """One audit record as an OCSF 1.x event (API Activity 6003 or Authentication 3002), for the
    security team's SIEM. The body is the OCSF object itself; its schema is OCSF's."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ce_type: ClassVar[str] = "moment.audit.ocsf-event.v1"

    class_uid: int
    category_uid: int
    activity_id: int
    type_uid: int
    time: int
