"""Login by username or e-mail, with one uniform failure, a dummy hash for unknown users, and
throttling per account and per source that every identity instance shares through the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Login, LoginFields, LoginSucceeded, Session
from moment_contracts.sealed import public_key_from_text, seal
from moment_identity.adapters.repositories import Credentials
from moment_identity.adapters.sealing import binding
from moment_identity.adapters.throttle import SqlThrottleStore
from moment_identity.domain.errors import SealedInputRejected
from moment_identity.domain.lockout import (
    ThrottlePolicy,
    account_key,
    retry_after_s,
    source_key,
)
from moment_identity.domain.normalise import email_key, username_key
from moment_identity.domain.passwords import normalise_password
from moment_identity.service.registration import Crypto
from moment_identity.service.revocation import revoke_all
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]


class SessionIssuer(Protocol):
    async def issue(self, subject_id: str, session_version: int) -> Session: ...


@dataclass(frozen=True)
class LoginDeps:
    crypto: Crypto
    policy: ThrottlePolicy
    dummy_hash: str
    sessions: SessionIssuer
    uow_factory: Callable[[], IdentityUnitOfWork]


@dataclass(frozen=True)
class Attempt:
    request: Envelope
    account: str
    source: str
    credentials: Credentials | None


def open_login(crypto: Crypto, request: Envelope, body: Login) -> LoginFields:
    plaintext = crypto.opener.open(body.sealed, binding(request, body, "sealed"))
    try:
        return LoginFields.model_validate_json(plaintext)
    except ValidationError:
        raise SealedInputRejected("the login fields do not match their contract") from None


def identifier_index(crypto: Crypto, identifier: str) -> str:
    if "@" in identifier:
        return crypto.indexer.index("email", email_key(identifier))
    return crypto.indexer.index("username", username_key(identifier))


async def prepare_login(deps: LoginDeps, request: Envelope, body: Login) -> Step:
    """The slow part (the hash) runs outside a transaction; returns the step that records it."""
    fields = open_login(deps.crypto, request, body)
    index = identifier_index(deps.crypto, fields.identifier)
    keys = (account_key(index), source_key(deps.crypto.indexer.index("source", fields.source)))
    async with deps.uow_factory() as uow:
        counters = await SqlThrottleStore(uow.session, deps.policy).counters(keys)
        credentials = await uow.users.credentials(index)
    attempt = Attempt(request, keys[0], keys[1], credentials)
    now = datetime.now(UTC)
    waits = [w for key in keys if (w := retry_after_s(counters.get(key), now)) is not None]
    if waits:
        return lambda uow: _refuse_locked(uow, attempt, max(waits))
    stored = credentials.password_hash if credentials else deps.dummy_hash
    # The hash runs for unknown users too, against a dummy, so timing can't tell who exists.
    password = normalise_password(fields.password)
    verified = await deps.crypto.hasher.verify(stored, password)
    if not verified or credentials is None:
        return lambda uow: _record_failure(deps, uow, attempt)
    return await _prepare_success(deps, attempt, credentials, password, body.reply_key)


async def _prepare_success(
    deps: LoginDeps, attempt: Attempt, credentials: Credentials, password: str, reply_key: str
) -> Step:
    upgraded = None
    if deps.crypto.hasher.needs_rehash(credentials.password_hash):
        upgraded = await deps.crypto.hasher.hash(password)
    if credentials.status != "active":
        return lambda uow: _refuse_pending(deps, uow, attempt)
    session = await deps.sessions.issue(credentials.subject_id, credentials.session_version)
    sealed = seal(
        session.model_dump_json().encode(), public_key_from_text(reply_key), LoginSucceeded.ce_type
    )

    async def succeed(uow: IdentityUnitOfWork) -> Contract:
        await SqlThrottleStore(uow.session, deps.policy).clear(attempt.account)
        if upgraded is not None:
            await uow.users.set_password_hash(credentials.subject_id, upgraded)
        _audit(uow, attempt, "success")
        return LoginSucceeded(subject_id=credentials.subject_id, sealed_session=sealed)

    return succeed


async def _record_failure(deps: LoginDeps, uow: IdentityUnitOfWork, attempt: Attempt) -> Contract:
    store = SqlThrottleStore(uow.session, deps.policy)
    now = datetime.now(UTC)
    account = await store.fail(attempt.account, now)
    await store.fail(attempt.source, now)
    just_locked = account.locked_until is not None and account.failures == 0
    if just_locked and attempt.credentials is not None:
        # A lockout also ends every session: whoever is guessing may already hold one.
        await revoke_all(uow, attempt.credentials.subject_id)
    _audit(uow, attempt, "failure")
    return ErrorReply.of(ErrorCode.LOGIN_FAILED)


async def _refuse_locked(uow: IdentityUnitOfWork, attempt: Attempt, wait_s: int) -> Contract:
    _audit(uow, attempt, "denied")
    return ErrorReply.of(ErrorCode.LOCKED_OUT, retry_after_s=wait_s)


async def _refuse_pending(deps: LoginDeps, uow: IdentityUnitOfWork, attempt: Attempt) -> Contract:
    await SqlThrottleStore(uow.session, deps.policy).clear(attempt.account)
    _audit(uow, attempt, "denied")
    return ErrorReply.of(ErrorCode.GUARDIAN_CONSENT_REQUIRED)


def _audit(uow: IdentityUnitOfWork, attempt: Attempt, outcome: str) -> None:
    subject = attempt.credentials.subject_id if attempt.credentials else None
    audit_login(uow, attempt, subject, "customer", outcome)


class LoginAttempt(Protocol):
    @property
    def request(self) -> Envelope: ...
    @property
    def source(self) -> str: ...


def audit_login(
    uow: IdentityUnitOfWork,
    attempt: LoginAttempt,
    principal_id: str | None,
    role: str,
    outcome: str,
) -> None:
    """One shape for every login attempt, known principal or not; the source only as its hash."""
    event = audit_event(
        action="login",
        subject_id=principal_id or "unknown",
        actor_id=principal_id or "anonymous",
        actor_role=role,
        fields=("password",),
        outcome=outcome,
        purpose="user-dealings" if role == "customer" else None,
        request_id=attempt.request.id,
    )
    uow.audit(event.model_copy(update={"source_ref": attempt.source.removeprefix("source:")}))
