"""Ending sessions: raise the session version, and tell every service that verifies offline."""

from __future__ import annotations

from moment_contracts import topics
from moment_contracts.principals import PrincipalTokensRevoked
from moment_identity.service.unit_of_work import IdentityUnitOfWork


def revoke_tokens(uow: IdentityUnitOfWork, principal_id: str, new_version: int) -> None:
    """Announce, in the same transaction that raised it, that every token of `principal_id` with a
    session version below `new_version` is revoked. Call after every session-version raise."""
    event = PrincipalTokensRevoked(principal_id=principal_id, min_session_version=new_version)
    uow.publish(topics.IDENTITY_EVENTS, event, principal_id)


async def revoke_all(uow: IdentityUnitOfWork, subject_id: str) -> None:
    """End every session of a customer (password reset, lockout, erasure)."""
    version = await uow.users.bump_session_version(subject_id)
    if version is not None:
        revoke_tokens(uow, subject_id, version)
