"""Staff and service-account principals: their logins, staff accounts, and token revocation.

Staff log in with the protections customers get (one uniform failure, a dummy hash for unknown
usernames, lockout per account and per source, every attempt audited); service accounts prove a
secret kept in Vault. Whenever identity raises a principal's session version it publishes
`PrincipalTokensRevoked` through the outbox, so every verifying service drops the old tokens.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from pydantic import ValidationError

from moment_auth.principals import Principal, Role, ServiceAccount
from moment_auth.tokens import IssuedToken
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Session
from moment_contracts.principals import (
    ServiceLogin,
    ServiceLoginFields,
    ServiceLoginSucceeded,
    StaffLogin,
    StaffLoginFields,
    StaffLoginSucceeded,
)
from moment_contracts.sealed import Binding, SealedBox, public_key_from_text, seal
from moment_crypto.blind_index import BlindIndexer
from moment_identity.adapters.hashing import SecretHasher
from moment_identity.adapters.sealing import binding
from moment_identity.adapters.staff import NewStaff, SqlStaffRepository, StaffRecord
from moment_identity.adapters.throttle import SqlThrottleStore
from moment_identity.domain.errors import IdentityError, SealedInputRejected
from moment_identity.domain.lockout import ThrottlePolicy, retry_after_s, source_key
from moment_identity.domain.normalise import nfkc, username_key
from moment_identity.domain.passwords import check_password, normalise_password
from moment_identity.service.login import LoginDeps, audit_login
from moment_identity.service.registration import Crypto
from moment_identity.service.revocation import revoke_tokens
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]
M = TypeVar("M", bound=Contract)

STAFF_USERNAME_FIELD = "staff-username"
STAFF_ACCOUNT_PREFIX = "staff-account:"
OPERATOR_ACTOR = "operator-cli"
# Compared against when a login names no known service, so the timing does not tell.
_NO_SECRET = secrets.token_urlsafe(32)


class PrincipalSigner(Protocol):
    """Issues a token for any principal; moment_auth's TokenSigner is one."""

    async def issue(self, principal: Principal) -> IssuedToken: ...


@dataclass(frozen=True)
class PrincipalDeps:
    login: LoginDeps
    signer: PrincipalSigner
    # Service name -> secret, read from Vault once at start-up.
    service_secrets: Mapping[str, str] = field(repr=False)


class StaffAccountExists(IdentityError):
    def __init__(self) -> None:
        super().__init__("a staff account with this username already exists")


class StaffAccountNotFound(IdentityError):
    def __init__(self) -> None:
        super().__init__("no staff account has this username")


class StaffAccountRejected(IdentityError):
    """The username or password does not meet the rules; `problems` are (field, code) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("staff account rejected: " + ", ".join(f"{f}:{c}" for f, c in problems))
        self.problems = tuple(problems)


def staff_username_index(indexer: BlindIndexer, username: str) -> str:
    return indexer.index(STAFF_USERNAME_FIELD, username_key(username))


def staff_account_key(username_index: str) -> str:
    return f"{STAFF_ACCOUNT_PREFIX}{username_index}"


def open_sealed(crypto: Crypto, bound: Binding, box: SealedBox, model: type[M]) -> M:
    plaintext = crypto.opener.open(box, bound)
    try:
        return model.model_validate_json(plaintext)
    except ValidationError:
        raise SealedInputRejected("the sealed fields do not match their contract") from None


async def sealed_session(
    signer: PrincipalSigner, principal: Principal, reply_key: str, context: str
) -> SealedBox:
    """A token for `principal`, sealed to the caller's one-time reply key."""
    try:
        recipient = public_key_from_text(reply_key)
    except ValueError:
        raise SealedInputRejected("the reply key is not an X25519 public key") from None
    issued = await signer.issue(principal)
    session = Session(token=issued.token, expires_at=issued.expires_at)
    return seal(session.model_dump_json().encode(), recipient, context)


# --- staff login ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffAttempt:
    request: Envelope
    account: str
    source: str
    staff: StaffRecord | None


async def prepare_staff_login(deps: PrincipalDeps, request: Envelope, body: StaffLogin) -> Step:
    """The hash runs outside a transaction; returns the step that records the outcome."""
    login = deps.login
    fields = open_sealed(
        login.crypto, binding(request, body, "sealed"), body.sealed, StaffLoginFields
    )
    index = staff_username_index(login.crypto.indexer, fields.username)
    source = source_key(login.crypto.indexer.index("source", fields.source))
    keys = (staff_account_key(index), source)
    async with login.uow_factory() as uow:
        counters = await SqlThrottleStore(uow.session, login.policy).counters(keys)
        staff = await SqlStaffRepository(uow.session).by_username_index(index)
    attempt = StaffAttempt(request, keys[0], source, staff)
    now = datetime.now(UTC)
    waits = [w for key in keys if (w := retry_after_s(counters.get(key), now)) is not None]
    if waits:
        return lambda uow: _refuse_locked(uow, attempt, max(waits))
    password = normalise_password(fields.password)
    # Unknown usernames are checked against a dummy hash, so timing can't tell who exists.
    stored = staff.password_hash if staff else login.dummy_hash
    verified = await login.crypto.hasher.verify(stored, password)
    if not verified or staff is None:
        return lambda uow: _record_failure(login.policy, uow, attempt, "failure")
    if not staff.active:
        # Same reply as a wrong password; the audit trail alone says a deactivated account tried.
        return lambda uow: _record_failure(login.policy, uow, attempt, "denied")
    return await _prepare_staff_success(deps, attempt, staff, password, body.reply_key)


async def _prepare_staff_success(
    deps: PrincipalDeps, attempt: StaffAttempt, staff: StaffRecord, password: str, reply_key: str
) -> Step:
    login = deps.login
    upgraded = None
    if login.crypto.hasher.needs_rehash(staff.password_hash):
        upgraded = await login.crypto.hasher.hash(password)
    principal = Principal.staff(staff.staff_id, map(Role, staff.roles), staff.session_version)
    sealed = await sealed_session(deps.signer, principal, reply_key, StaffLoginSucceeded.ce_type)

    async def succeed(uow: IdentityUnitOfWork) -> Contract:
        await SqlThrottleStore(uow.session, login.policy).clear(attempt.account)
        if upgraded is not None:
            await SqlStaffRepository(uow.session).set_password_hash(staff.staff_id, upgraded)
        _audit_staff(uow, attempt, "success")
        return StaffLoginSucceeded.model_validate(
            {"staff_id": staff.staff_id, "roles": staff.roles, "sealed_session": sealed}
        )

    return succeed


async def _record_failure(
    policy: ThrottlePolicy, uow: IdentityUnitOfWork, attempt: StaffAttempt, outcome: str
) -> Contract:
    store = SqlThrottleStore(uow.session, policy)
    now = datetime.now(UTC)
    account = await store.fail(attempt.account, now)
    await store.fail(attempt.source, now)
    if account.locked_until is not None and account.failures == 0 and attempt.staff is not None:
        # As for customers: whoever is guessing may already hold one of this account's sessions.
        await _end_staff_sessions(uow, attempt.staff.staff_id)
    _audit_staff(uow, attempt, outcome)
    return ErrorReply.of(ErrorCode.LOGIN_FAILED)


async def _end_staff_sessions(uow: IdentityUnitOfWork, staff_id: str) -> None:
    version = await SqlStaffRepository(uow.session).bump_session_version(staff_id)
    if version is not None:
        revoke_tokens(uow, staff_id, version)


async def _refuse_locked(uow: IdentityUnitOfWork, attempt: StaffAttempt, wait_s: int) -> Contract:
    _audit_staff(uow, attempt, "denied")
    return ErrorReply.of(ErrorCode.LOCKED_OUT, retry_after_s=wait_s)


def _audit_staff(uow: IdentityUnitOfWork, attempt: StaffAttempt, outcome: str) -> None:
    audit_login(uow, attempt, attempt.staff.staff_id if attempt.staff else None, "staff", outcome)


# --- service-account login -----------------------------------------------------------------


def service_secrets_from(raw: Mapping[str, str]) -> dict[str, str]:
    """The known service accounts' secrets; anything else in the Vault secret is ignored."""
    known = {account.value for account in ServiceAccount}
    return {name: secret for name, secret in raw.items() if name in known and secret}


def secret_matches(service_secrets: Mapping[str, str], service: str, secret: str) -> bool:
    expected = service_secrets.get(service)
    candidate = _NO_SECRET if expected is None else expected
    matches = hmac.compare_digest(candidate.encode(), secret.encode())
    return matches and expected is not None


async def prepare_service_login(deps: PrincipalDeps, request: Envelope, body: ServiceLogin) -> Step:
    fields = open_sealed(
        deps.login.crypto, binding(request, body, "sealed"), body.sealed, ServiceLoginFields
    )
    if not secret_matches(deps.service_secrets, fields.service, fields.secret):
        # Only a known name is recorded: an unknown one is caller-chosen text.
        known = fields.service in deps.service_secrets
        actor = fields.service if known else "unknown"
        return lambda uow: _refuse_service(uow, request, actor)
    principal = Principal.service(ServiceAccount(fields.service))
    sealed = await sealed_session(
        deps.signer, principal, body.reply_key, ServiceLoginSucceeded.ce_type
    )

    async def succeed(uow: IdentityUnitOfWork) -> Contract:
        _audit_service(uow, request, principal.id, "success")
        return ServiceLoginSucceeded(service=principal.id, sealed_session=sealed)

    return succeed


async def _refuse_service(uow: IdentityUnitOfWork, request: Envelope, actor: str) -> Contract:
    _audit_service(uow, request, actor, "failure")
    return ErrorReply.of(ErrorCode.LOGIN_FAILED)


def _audit_service(uow: IdentityUnitOfWork, request: Envelope, actor: str, outcome: str) -> None:
    uow.audit(
        audit_event(
            action="login",
            subject_id=actor,
            actor_id=actor,
            actor_role="service",
            fields=("secret",),
            outcome=outcome,
            purpose=None,
            request_id=request.id,
        )
    )


# --- staff accounts, for operators ---------------------------------------------------------


def new_staff_id() -> str:
    """Pseudonymous and recognisable as staff in audit records."""
    return f"staff-{uuid.uuid4()}"


def check_staff_account(username: str, password: str, roles: Sequence[Role]) -> None:
    problems = [
        ("password", code) for code in check_password(password, username=username, email="")
    ]
    if not 3 <= len(nfkc(username).strip()) <= 64:
        problems.insert(0, ("username", "length"))
    if not roles:
        problems.append(("roles", "required"))
    if problems:
        raise StaffAccountRejected(problems)


@dataclass(frozen=True)
class StaffAdmin:
    """Creating and deactivating staff accounts: what the `staff` operator commands do."""

    indexer: BlindIndexer
    hasher: SecretHasher
    uow_factory: Callable[[], IdentityUnitOfWork]

    async def create(self, username: str, password: str, roles: Sequence[Role]) -> str:
        """The new account's staff id; StaffAccountExists when the username is taken."""
        check_staff_account(username, password, roles)
        staff = NewStaff(
            staff_id=new_staff_id(),
            username_index=staff_username_index(self.indexer, username),
            password_hash=await self.hasher.hash(normalise_password(password)),
            roles=tuple(dict.fromkeys(role.value for role in roles)),
            created_at=datetime.now(UTC),
        )
        async with self.uow_factory() as uow:
            repository = SqlStaffRepository(uow.session)
            # The unique index makes this race-safe; the check only spares a constraint error.
            if await repository.exists(staff.username_index):
                raise StaffAccountExists
            await repository.add(staff)
            _audit_operator(uow, "create", staff.staff_id, ("username", "password", "roles"))
            await uow.commit()
        return staff.staff_id

    async def ensure(self, username: str, password: str, roles: Sequence[Role]) -> tuple[str, str]:
        """(staff id, "created" | "unchanged" | "reset"): the account exists afterwards with this
        password, whatever an interrupted earlier attempt left. A reset revokes the account's
        tokens, as any password change must; roles and active state are left as they are."""
        check_staff_account(username, password, roles)
        index = staff_username_index(self.indexer, username)
        async with self.uow_factory() as uow:
            record = await SqlStaffRepository(uow.session).by_username_index(index)
        if record is None:
            try:
                return await self.create(username, password, roles), "created"
            except StaffAccountExists:
                # Created meanwhile by another operator: fall through to check its password.
                return await self.ensure(username, password, roles)
        if await self.hasher.verify(record.password_hash, normalise_password(password)):
            return record.staff_id, "unchanged"
        password_hash = await self.hasher.hash(normalise_password(password))
        async with self.uow_factory() as uow:
            repository = SqlStaffRepository(uow.session)
            await repository.set_password_hash(record.staff_id, password_hash)
            version = await repository.bump_session_version(record.staff_id)
            if version is not None:
                revoke_tokens(uow, record.staff_id, version)
            _audit_operator(uow, "write", record.staff_id, ("password", "session_version"))
            await uow.commit()
        return record.staff_id, "reset"

    async def deactivate(self, username: str) -> StaffRecord:
        """Deactivate the account and revoke every token it holds; returns it as it now is."""
        index = staff_username_index(self.indexer, username)
        async with self.uow_factory() as uow:
            record = await SqlStaffRepository(uow.session).deactivate(index)
            if record is None:
                raise StaffAccountNotFound
            revoke_tokens(uow, record.staff_id, record.session_version)
            _audit_operator(uow, "write", record.staff_id, ("active", "session_version"))
            await uow.commit()
        return record


def _audit_operator(
    uow: IdentityUnitOfWork, action: str, staff_id: str, fields: tuple[str, ...]
) -> None:
    uow.audit(
        audit_event(
            action=action,
            subject_id=staff_id,
            actor_id=OPERATOR_ACTOR,
            actor_role="operator",
            fields=fields,
            outcome="success",
            purpose=None,
            request_id=None,
        )
    )
