"""Audit events as identity would publish them, for tests that feed the audit service directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moment_contracts.audit import PersonalDataAccessed


def access(subject_id: str, outcome: str = "success", **changes: Any) -> PersonalDataAccessed:
    """A support operator's read of one field, for user-dealings: field names only, no values."""
    return PersonalDataAccessed.model_validate(
        {
            "action": "read",
            "actor_id": "staff-1",
            "actor_role": "support-operator",
            "subject_id": subject_id,
            "fields": ("email",),
            "purpose": "user-dealings",
            "outcome": outcome,
            "occurred_at": datetime.now(UTC),
            **changes,
        }
    )
