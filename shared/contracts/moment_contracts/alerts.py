"""Audit alert contracts (v1): what the audit service's detection rules tell the security team.

Ids and field names only, never a personal value: an alert must be as safe to hand to a SIEM as the
audit records it was derived from.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from moment_contracts.base import Contract, Timestamp

Severity = Literal["low", "medium", "high"]


class AlertRaised(Contract):
    """One detection: `count` matching records seen between `first_seen` and `last_seen`.

    `alert_id` is derived from the rule, its key and the window start, so a replay of the same
    records raises alerts with the same ids and consumers can de-duplicate on it.
    """

    ce_type: ClassVar[str] = "moment.audit.alert-raised.v1"

    rule: str = Field(max_length=64)
    severity: Severity
    subject_id: str | None = Field(default=None, max_length=128)
    actor_id: str | None = Field(default=None, max_length=128)
    source_ref: str | None = Field(default=None, max_length=80)
    window_s: int = Field(ge=0, description="the rule's window; 0 for one-off findings")
    count: int = Field(ge=0)
    first_seen: Timestamp
    last_seen: Timestamp
    detail: str = Field(max_length=200, description="what matched: codes and field names only")
    alert_id: str = Field(max_length=64)
