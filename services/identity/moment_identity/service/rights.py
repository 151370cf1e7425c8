"""Rectification, export and erasure (the data-subject rights the policy's P1 data needs).

Each is authorised like a read (the caller's token, then the role policy), audited with field names
only, and refused with an audited denial otherwise. Erasure is crypto-shredding: once the wrapped
subject key is gone, every copy of the subject's ciphertext is noise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from moment_auth.principals import Principal
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.profile import (
    ErasePersonalData,
    ErasureCompleted,
    ExportDocument,
    ExportPersonalData,
    FieldChanges,
    PersonalDataExport,
    PersonalDataUpdated,
    ProfileUpdated,
    SubjectErased,
    UpdatePersonalData,
)
from moment_contracts.sealed import public_key_from_text, seal
from moment_crypto.envelope import WrappedKey
from moment_identity.adapters.sealing import binding
from moment_identity.domain.access import (
    READABLE_FIELDS,
    AccessRequest,
    Decision,
    decide_rights,
    decide_write,
)
from moment_identity.domain.errors import FieldProblem
from moment_identity.domain.fields import parse_plaintext
from moment_identity.domain.model import ENCRYPTED_FIELDS, check_changes
from moment_identity.domain.normalise import display_text, email_key, username_key
from moment_identity.service.errors import field_error
from moment_identity.service.reads import ReadDeps
from moment_identity.service.revocation import revoke_all
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event, request_ref

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]


def rights_request(principal: Principal, subject_id: str) -> AccessRequest:
    return AccessRequest(
        principal_id=principal.id,
        kind=principal.kind.value,
        roles=tuple(str(r) for r in principal.roles),
        subject_id=subject_id,
        fields=frozenset(ENCRYPTED_FIELDS),
        purpose="user-dealings",
    )


def audited(
    deps: ReadDeps,
    request: Envelope,
    principal: Principal,
    subject_id: str,
    action: str,
    outcome: str,
    *,
    fields: tuple[str, ...] = ENCRYPTED_FIELDS,
    purpose: str | None = "user-dealings",
) -> Callable[[IdentityUnitOfWork], Awaitable[None]]:
    async def emit(uow: IdentityUnitOfWork) -> None:
        event = audit_event(
            action=action,
            subject_id=subject_id,
            actor_id=principal.id,
            actor_role=",".join(str(r) for r in principal.roles) or principal.kind.value,
            fields=fields,
            outcome=outcome,
            purpose=purpose,
            request_id=request.id,
        )
        await deps.audit.emit(uow, event)

    return emit


def refusal(emit: Callable[[IdentityUnitOfWork], Awaitable[None]], code: ErrorCode) -> Step:
    async def refuse(uow: IdentityUnitOfWork) -> Contract:
        await emit(uow)
        return ErrorReply.of(code)

    return refuse


def _refuse_values(
    emit: Callable[[IdentityUnitOfWork], Awaitable[None]], problems: list[FieldProblem]
) -> Step:
    """Values that break the field rules: refused by field name, and the attempt audited."""

    async def refuse(uow: IdentityUnitOfWork) -> Contract:
        await emit(uow)
        fields = tuple(field_error(p.field, p.code) for p in problems)
        return ErrorReply.of(ErrorCode.VALIDATION_FAILED, fields=fields)

    return refuse


def refusal_for(decision: Decision) -> ErrorCode:
    return ErrorCode.NOT_FOUND if decision.reason == "not-found" else ErrorCode.ACCESS_DENIED


async def prepare_export(deps: ReadDeps, request: Envelope, body: ExportPersonalData) -> Step:
    async with deps.uow_factory() as uow:
        principal = await deps.callers.caller(
            uow, body.sealed_credentials, binding(request, body, "sealed_credentials")
        )
        encrypted = await uow.users.encrypted_fields(body.subject_id)
        wrapped = await uow.users.wrapped_key(body.subject_id)
        account = await uow.users.account(body.subject_id)
    decision = decide_rights(rights_request(principal, body.subject_id))
    if decision.allowed and (encrypted is None or wrapped is None or account is None):
        decision = Decision(False, "not-found")
    if not decision.allowed or encrypted is None or wrapped is None or account is None:
        emit = audited(deps, request, principal, body.subject_id, "export", "denied")
        return refusal(emit, refusal_for(decision))
    key = await deps.crypto.keyring.unwrap(*wrapped)
    document = ExportDocument(
        subject_id=body.subject_id,
        personal_data={
            name: deps.crypto.cipher.decrypt(key, body.subject_id, name, wrapped.version, token)
            for name, token in encrypted.items()
        },
        account=account,
        exported_at=datetime.now(UTC),
    )
    sealed = seal(
        document.model_dump_json().encode(),
        public_key_from_text(body.reply_key),
        PersonalDataExport.ce_type,
    )
    emit = audited(deps, request, principal, body.subject_id, "export", "success")

    async def release(uow: IdentityUnitOfWork) -> Contract:
        await emit(uow)
        return PersonalDataExport(subject_id=body.subject_id, sealed_export=sealed)

    return release


async def prepare_erase(deps: ReadDeps, request: Envelope, body: ErasePersonalData) -> Step:
    async with deps.uow_factory() as uow:
        principal = await deps.callers.caller(
            uow, body.sealed_credentials, binding(request, body, "sealed_credentials")
        )
        exists = await uow.users.wrapped_key(body.subject_id) is not None
    decision = decide_rights(rights_request(principal, body.subject_id))
    if decision.allowed and not exists:
        decision = Decision(False, "not-found")
    if not decision.allowed:
        emit = audited(deps, request, principal, body.subject_id, "erase", "denied")
        return refusal(emit, refusal_for(decision))
    emit = audited(deps, request, principal, body.subject_id, "erase", "success")
    if deps.rotate_sealing_key_on_erasure:
        await deps.crypto.opener.rotate()

    async def erase(uow: IdentityUnitOfWork) -> Contract:
        # Other services verify tokens offline: tell them this subject's sessions are over.
        await revoke_all(uow, body.subject_id)
        await uow.users.erase(body.subject_id, request_ref(request.id))
        erased_at = datetime.now(UTC)
        uow.publish(
            topics.IDENTITY_EVENTS,
            SubjectErased(subject_id=body.subject_id, erased_at=erased_at),
            body.subject_id,
        )
        await emit(uow)
        # The unwrapped key must not outlive its wrapped form, even in this process's cache.
        deps.crypto.keyring.forget(body.subject_id)
        return ErasureCompleted(subject_id=body.subject_id, erased_at=erased_at)

    return erase


async def prepare_update(deps: ReadDeps, request: Envelope, body: UpdatePersonalData) -> Step:
    changes = open_changes(deps, request, body)
    async with deps.uow_factory() as uow:
        principal = await deps.callers.caller(
            uow, body.sealed_credentials, binding(request, body, "sealed_credentials")
        )
        wrapped = await uow.users.wrapped_key(body.subject_id)
    ask = rights_request(principal, body.subject_id)
    ask = replace(ask, fields=frozenset(changes), purpose=body.purpose)
    decision = decide_write(ask)
    if decision.allowed and wrapped is None:
        decision = Decision(False, "not-found")

    def outcome(result: str) -> Callable[[IdentityUnitOfWork], Awaitable[None]]:
        scope = _scope(changes, body)
        return audited(deps, request, principal, body.subject_id, "write", result, **scope)

    if not decision.allowed or wrapped is None:
        return refusal(outcome("denied"), refusal_for(decision))
    if problems := check_changes(changes):
        return _refuse_values(outcome("failure"), problems)
    encrypted = await _encrypt(deps, body.subject_id, wrapped, changes)
    indexes = new_indexes(deps, changes)
    emit, conflict = outcome("success"), outcome("failure")

    async def store(uow: IdentityUnitOfWork) -> Contract:
        # The unique indexes still decide a race; checking first answers the usual case with a
        # recorded refusal, audited against its subject.
        if await uow.users.taken_by_another(body.subject_id, indexes):
            await conflict(uow)
            return ErrorReply.of(ErrorCode.CONFLICT)
        await uow.users.update_fields(body.subject_id, encrypted, indexes)
        fields = tuple(sorted(changes))
        uow.publish(
            topics.IDENTITY_EVENTS,
            ProfileUpdated(subject_id=body.subject_id, fields=fields, updated_at=datetime.now(UTC)),
            body.subject_id,
        )
        await emit(uow)
        return PersonalDataUpdated(subject_id=body.subject_id, fields=fields)

    return store


async def _encrypt(
    deps: ReadDeps, subject_id: str, wrapped: WrappedKey, changes: dict[str, str]
) -> dict[str, bytes]:
    key = await deps.crypto.keyring.unwrap(*wrapped)
    return {
        name: deps.crypto.cipher.encrypt(key, subject_id, name, wrapped.version, display_text(v))
        for name, v in changes.items()
    }


def open_changes(deps: ReadDeps, request: Envelope, body: UpdatePersonalData) -> dict[str, str]:
    plaintext = deps.crypto.opener.open(
        body.sealed_changes, binding(request, body, "sealed_changes")
    )
    changes = parse_plaintext(FieldChanges, plaintext, READABLE_FIELDS).values
    return {str(name): value for name, value in changes.items()}


def new_indexes(deps: ReadDeps, changes: dict[str, str]) -> dict[str, str]:
    """A changed username or e-mail gets a new blind index; the unique constraint keeps it free."""
    indexes: dict[str, str] = {}
    if "username" in changes:
        key = username_key(changes["username"])
        indexes["username_index"] = deps.crypto.indexer.index("username", key)
    if "email" in changes:
        indexes["email_index"] = deps.crypto.indexer.index("email", email_key(changes["email"]))
    return indexes


def _scope(changes: dict[str, str], body: UpdatePersonalData) -> dict[str, Any]:
    """A rectification is audited with the fields it touched and the purpose it declared."""
    return {"fields": tuple(sorted(changes)), "purpose": body.purpose}
