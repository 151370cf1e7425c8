"""Recording a guardian's consent for a minor's account, which until then cannot log in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import update

from moment_auth.principals import Principal, PrincipalKind
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import GuardianConsentRecorded, RecordGuardianConsent
from moment_identity.adapters.orm import users
from moment_identity.adapters.sealing import binding
from moment_identity.service.reads import ReadDeps
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]
RECORDING_ROLES = frozenset({"privacy-officer", "admin"})


def may_record(principal: Principal) -> bool:
    if principal.kind is PrincipalKind.SERVICE:
        return principal.id == "consent"
    return principal.kind is PrincipalKind.STAFF and bool(
        RECORDING_ROLES.intersection(str(r) for r in principal.roles)
    )


async def prepare_guardian_consent(
    deps: ReadDeps, request: Envelope, body: RecordGuardianConsent
) -> Step:
    async with deps.uow_factory() as uow:
        principal = await deps.callers.caller(
            uow, body.sealed_credentials, binding(request, body, "sealed_credentials")
        )

    async def record(uow: IdentityUnitOfWork) -> Contract:
        if not may_record(principal):
            await _audit(deps, uow, request, principal, body, "denied")
            return ErrorReply.of(ErrorCode.ACCESS_DENIED)
        result = await uow.session.execute(
            update(users)
            .where(
                users.c.subject_id == body.subject_id,
                users.c.status == "pending-guardian-consent",
            )
            .values(status="active", updated_at=datetime.now(UTC))
        )
        if not getattr(result, "rowcount", 0):
            await _audit(deps, uow, request, principal, body, "failure")
            return ErrorReply.of(ErrorCode.NOT_FOUND)
        recorded = GuardianConsentRecorded(
            subject_id=body.subject_id,
            evidence_ref=body.evidence_ref,
            recorded_at=datetime.now(UTC),
        )
        uow.publish(topics.IDENTITY_EVENTS, recorded, body.subject_id)
        await _audit(deps, uow, request, principal, body, "success")
        return recorded

    return record


async def _audit(
    deps: ReadDeps,
    uow: IdentityUnitOfWork,
    request: Envelope,
    principal: Principal,
    body: RecordGuardianConsent,
    outcome: str,
) -> None:
    event = audit_event(
        action="write",
        subject_id=body.subject_id,
        actor_id=principal.id,
        actor_role=",".join(str(r) for r in principal.roles) or principal.kind.value,
        fields=("status",),
        outcome=outcome,
        purpose="user-dealings",
        request_id=request.id,
    )
    await deps.audit.emit(uow, event)
