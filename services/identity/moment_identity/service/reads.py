"""Reading personal data: the subject reads its own; staff and services read named fields for a
declared purpose, as the role x purpose x field policy allows. Every read and every denial is
audited, and values are released only once that audit record is durable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from moment_auth.principals import Principal, PrincipalKind
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.profile import PersonalData, PersonalDataValues, ReadPersonalData
from moment_contracts.sealed import public_key_from_text, seal
from moment_crypto.envelope import WrappedKey
from moment_identity.adapters.audit_emitter import AuditEmitter
from moment_identity.adapters.sealing import binding
from moment_identity.domain.access import AccessRequest, Decision, decide
from moment_identity.service.callers import CallerCheck
from moment_identity.service.registration import Crypto
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]


@dataclass(frozen=True)
class ReadDeps:
    crypto: Crypto
    callers: CallerCheck
    audit: AuditEmitter
    uow_factory: Callable[[], IdentityUnitOfWork]
    # Erasure rotates the sealing key, so requests about the subject still in Kafka's history
    # can no longer be opened by anyone.
    rotate_sealing_key_on_erasure: bool = True


def access_request(principal: Principal, body: ReadPersonalData) -> AccessRequest:
    roles = principal.roles if principal.kind is PrincipalKind.STAFF else (principal.id,)
    return AccessRequest(
        principal_id=principal.id,
        kind=principal.kind.value,
        roles=tuple(str(r) for r in roles),
        subject_id=body.subject_id,
        fields=frozenset(body.fields),
        purpose=body.purpose,
    )


async def prepare_read(deps: ReadDeps, request: Envelope, body: ReadPersonalData) -> Step:
    """A read does its work in one short transaction: check the caller, fetch, decrypt (the key is
    cached), seal, and record the audit event; the values leave only after that commit."""

    async def read(uow: IdentityUnitOfWork) -> Contract:
        principal = await deps.callers.caller(
            uow, body.sealed_credentials, binding(request, body, "sealed_credentials")
        )
        decision = decide(access_request(principal, body))
        if not decision.allowed:
            return await _refusal(deps, request, principal, body, decision)(uow)
        encrypted = await uow.users.encrypted_fields(body.subject_id)
        wrapped = await uow.users.wrapped_key(body.subject_id)
        if encrypted is None or wrapped is None:
            not_found = Decision(False, "not-found")
            return await _refusal(deps, request, principal, body, not_found)(uow)
        reply = await _sealed_values(deps, body, encrypted, wrapped)
        await deps.audit.emit(uow, _event(request, principal, body, "success"))
        return reply

    return read


async def _sealed_values(
    deps: ReadDeps, body: ReadPersonalData, encrypted: dict[str, bytes], wrapped: WrappedKey
) -> PersonalData:
    key = await deps.crypto.keyring.unwrap(*wrapped)
    values = {
        name: deps.crypto.cipher.decrypt(
            key, body.subject_id, name, wrapped.version, encrypted[name]
        )
        for name in body.fields
    }
    sealed = seal(
        PersonalDataValues(values=values).model_dump_json().encode(),
        public_key_from_text(body.reply_key),
        PersonalData.ce_type,
    )
    return PersonalData(
        subject_id=body.subject_id,
        fields=body.fields,
        sealed_values=sealed,
        read_at=datetime.now(UTC),
    )


def _refusal(
    deps: ReadDeps,
    request: Envelope,
    principal: Principal,
    body: ReadPersonalData,
    decision: Decision,
) -> Step:
    code = ErrorCode.NOT_FOUND if decision.reason == "not-found" else ErrorCode.ACCESS_DENIED

    async def refuse(uow: IdentityUnitOfWork) -> Contract:
        await deps.audit.emit(uow, _event(request, principal, body, "denied"))
        return ErrorReply.of(code)

    return refuse


def _event(
    request: Envelope, principal: Principal, body: ReadPersonalData, outcome: str
) -> PersonalDataAccessed:
    role = ",".join(str(r) for r in principal.roles) or principal.kind.value
    return audit_event(
        action="read",
        subject_id=body.subject_id,
        actor_id=principal.id,
        actor_role=role,
        fields=tuple(body.fields),
        outcome=outcome,
        purpose=body.purpose,
        request_id=request.id,
    )
