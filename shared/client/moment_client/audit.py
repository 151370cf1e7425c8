"""The audit service's calls: who accessed a subject's data, when and why.

The bearer token travels in clear on `audit.commands` (see `moment_contracts.audit_queries`): audit
verifies it offline, and the topic must be ACL-restricted to its legitimate callers.
"""

from __future__ import annotations

from datetime import datetime

from moment_client.client import RequestClient
from moment_contracts import topics
from moment_contracts.audit import Outcome
from moment_contracts.audit_queries import AccessEntry, AccessHistory, SearchAccess


class AuditClient:
    def __init__(self, requests: RequestClient) -> None:
        self._requests = requests

    async def access_history(
        self,
        token: str,
        *,
        subject_id: str | None = None,
        actor_id: str | None = None,
        purpose: str | None = None,
        outcome: Outcome | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        request_id: str | None = None,
    ) -> tuple[AccessEntry, ...]:
        """Matching accesses, newest first. Raises ServiceError (UNAUTHORISED, ACCESS_DENIED)."""
        request = SearchAccess(
            token=token,
            subject_id=subject_id,
            actor_id=actor_id,
            purpose=purpose,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
        )
        reply = await self._requests.request(
            topics.AUDIT_COMMANDS,
            request,
            AccessHistory,
            subject=subject_id,
            request_id=request_id,
        )
        return reply.entries
