"""Audit query contracts (v1): who accessed a subject's data, when and why.

`SearchAccess` carries the caller's bearer token in clear, unlike identity's requests, which seal
it: the audit service holds no sealing key yet. That is acceptable only because the audit service
verifies the token's signature offline, and refuses tokens identity has revoked, before answering,
and because `audit.commands` must be
ACL-restricted to the services and staff tools allowed to ask. Sealing to an audit key is future
work. The token is left out of repr so it never reaches a log line.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from moment_contracts.audit import Outcome
from moment_contracts.base import Contract, Timestamp

MAX_LIMIT = 500


class SearchAccess(Contract):
    """Find audit records, newest first, matching every filter given (None: no filter)."""

    ce_type: ClassVar[str] = "moment.audit.search-access.v1"

    token: str = Field(max_length=4096, repr=False)
    subject_id: str | None = Field(default=None, max_length=128)
    actor_id: str | None = Field(default=None, max_length=128)
    purpose: str | None = Field(default=None, max_length=64)
    outcome: Outcome | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since is after until")
        return self


class AccessEntry(Contract):
    """One access, by field names only: an access history never carries a value."""

    ce_type: ClassVar[str] = "moment.audit.access-entry.v1"

    occurred_at: Timestamp
    action: str
    actor_role: str
    actor_id: str
    subject_id: str
    fields: tuple[str, ...] = ()
    purpose: str | None = None
    outcome: Outcome


class AccessHistory(Contract):
    """The reply to SearchAccess: matching accesses, newest first, at most `limit` of them."""

    ce_type: ClassVar[str] = "moment.audit.access-history.v1"

    entries: tuple[AccessEntry, ...] = ()
