"""Password recovery by the security question (privacy policy P1.2), hardened like login: one
uniform failure, dummy hashes for unknown identifiers, lockout per account and per source (apart
from login's, so one can't lock the other), and every attempt audited.

With the code channel on, a right answer is not enough: StartRecovery also issues a one-time code,
sealed to the storefront mailer's key, and AnswerRecovery needs it too. Identity never sees where
the code is mailed: the mailer looks the address up by subject id.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from moment_contracts.identity import Locale
from moment_contracts.recovery import (
    AnswerRecovery,
    RecoveryAnswerFields,
    RecoveryChallenge,
    RecoveryCode,
    RecoveryCodeIssued,
    RecoveryCompleted,
    RecoveryQuestion,
    RecoveryStartFields,
    StartRecovery,
)
from moment_contracts.sealed import Binding, SealedBox, public_key_from_text, seal
from moment_identity.adapters.recovery_store import RecoveryAccount, SqlRecoveryStore, StoredCode
from moment_identity.adapters.sealing import binding
from moment_identity.adapters.throttle import SqlThrottleStore
from moment_identity.domain.errors import SealedInputRejected
from moment_identity.domain.lockout import ThrottlePolicy, account_key, retry_after_s, source_key
from moment_identity.domain.normalise import loose_key, recovery_answer_key
from moment_identity.domain.passwords import check_password, normalise_password
from moment_identity.service.errors import field_error
from moment_identity.service.login import identifier_index
from moment_identity.service.registration import Crypto
from moment_identity.service.revocation import revoke_tokens
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event

Step = Callable[[IdentityUnitOfWork], Awaitable[Contract]]
Write = Callable[[IdentityUnitOfWork], Awaitable[None]]
F = TypeVar("F", RecoveryStartFields, RecoveryAnswerFields)

CODE_DIGITS = 8
START_FIELDS = ("recovery_question",)
ANSWER_FIELDS = ("recovery_answer", "password")

# What an unknown identifier is asked: plausible questions, one chosen per identifier and kept.
DECOY_QUESTIONS: dict[str, tuple[str, ...]] = {
    "ar": (
        "ما اسم أول مدرسة درست فيها؟",
        "في أي مدينة ولدت؟",
        "ما اسم صديق طفولتك المقرب؟",
        "ما اسم أول حيوان أليف اقتنيته؟",
        "من هو معلمك المفضل؟",
        "ما هي أكلتك المفضلة في الطفولة؟",
        "ما اسم الحي الذي نشأت فيه؟",
        "ما اسم جدتك لأمك؟",
    ),
    "en": (
        "What was the name of your first school?",
        "In which city were you born?",
        "What is the name of your closest childhood friend?",
        "What was the name of your first pet?",
        "Who was your favourite teacher?",
        "What was your favourite dish as a child?",
        "What is the name of the neighbourhood you grew up in?",
        "What is your maternal grandmother's first name?",
    ),
}


@dataclass(frozen=True)
class CodeChannel:
    mailer_key: X25519PublicKey
    ttl_s: int = 600
    max_attempts: int = 5
    # A new StartRecovery within this time mails nothing, so nobody can flood an inbox.
    resend_after_s: int = 60


@dataclass(frozen=True)
class RecoveryDeps:
    crypto: Crypto
    policy: ThrottlePolicy
    dummy_hash: str
    uow_factory: Callable[[], IdentityUnitOfWork]
    code_channel: CodeChannel | None = None


@dataclass(frozen=True)
class Attempt:
    request: Envelope
    index: str
    keys: tuple[str, str]
    account: RecoveryAccount | None
    wait_s: int | None
    code: StoredCode | None


def recovery_account_key(identifier_index: str) -> str:
    # Apart from login's "account:" counter: failing one must not lock the other.
    return f"recovery-account:{identifier_index}"


def decoy_question(crypto: Crypto, identifier_index: str, locale: Locale) -> str:
    """Keyed on the identifier's blind index, so asking again gives the same question."""
    questions = DECOY_QUESTIONS[locale]
    digest = crypto.indexer.index("recovery-decoy", identifier_index).rpartition(":")[2]
    return questions[int(digest, 16) % len(questions)]


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_key(code: str) -> str:
    """What is hashed: Arabic-Indic digits become ASCII, spaces and dashes go."""
    return loose_key(code)


def open_fields(crypto: Crypto, bound: Binding, box: SealedBox, model: type[F]) -> F:
    plaintext = crypto.opener.open(box, bound)
    try:
        return model.model_validate_json(plaintext)
    except ValidationError:
        raise SealedInputRejected("the recovery fields do not match their contract") from None


def reply_key_of(text: str) -> X25519PublicKey:
    try:
        return public_key_from_text(text)
    except ValueError:
        raise SealedInputRejected("the reply key is not an X25519 public key") from None


async def _lookup(deps: RecoveryDeps, request: Envelope, identifier: str, source: str) -> Attempt:
    index = identifier_index(deps.crypto, identifier)
    keys = (recovery_account_key(index), source_key(deps.crypto.indexer.index("source", source)))
    async with deps.uow_factory() as uow:
        counters = await SqlThrottleStore(uow.session, deps.policy).counters(keys)
        store = SqlRecoveryStore(uow.session)
        account = await store.account(index)
        code = await store.code(account.subject_id) if account and deps.code_channel else None
    now = datetime.now(UTC)
    waits = [w for key in keys if (w := retry_after_s(counters.get(key), now)) is not None]
    return Attempt(request, index, keys, account, max(waits, default=None), code)


async def _decrypt(crypto: Crypto, account: RecoveryAccount, names: tuple[str, ...]) -> list[str]:
    key = await crypto.keyring.unwrap(*account.key)
    return [
        crypto.cipher.decrypt(
            key, account.subject_id, name, account.key.version, account.encrypted[name]
        )
        for name in names
    ]


async def prepare_start(deps: RecoveryDeps, request: Envelope, body: StartRecovery) -> Step:
    """Reply with the question sealed to `reply_key`; an unknown identifier gets a decoy."""
    fields = open_fields(
        deps.crypto, binding(request, body, "sealed"), body.sealed, RecoveryStartFields
    )
    reply_key = reply_key_of(body.reply_key)
    attempt = await _lookup(deps, request, fields.identifier, fields.source)
    if attempt.wait_s is not None:
        return _refuse_locked(attempt, attempt.wait_s, START_FIELDS)
    if attempt.account is None:
        question = decoy_question(deps.crypto, attempt.index, body.locale)
    else:
        (question,) = await _decrypt(deps.crypto, attempt.account, START_FIELDS)
    issue = await _prepare_code(deps, attempt)
    plaintext = RecoveryQuestion(question=question, code_required=deps.code_channel is not None)
    sealed = seal(plaintext.model_dump_json().encode(), reply_key, RecoveryChallenge.ce_type)

    async def challenge(uow: IdentityUnitOfWork) -> Contract:
        if issue is not None:
            await issue(uow)
        _audit(uow, attempt, "success" if attempt.account else "failure", START_FIELDS)
        return RecoveryChallenge(sealed_question=sealed)

    return challenge


async def _prepare_code(deps: RecoveryDeps, attempt: Attempt) -> Write | None:
    channel, account = deps.code_channel, attempt.account
    if channel is None:
        return None
    code = new_code()
    # Hashed even when nothing is mailed, so the time taken doesn't tell who is registered.
    code_hash = await deps.crypto.hasher.hash(code_key(code))
    now = datetime.now(UTC)
    if account is None or _mailed_recently(attempt.code, now, channel):
        return None
    expires_at = now + timedelta(seconds=channel.ttl_s)
    secret = RecoveryCode(subject_id=account.subject_id, code=code).model_dump_json().encode()
    event = RecoveryCodeIssued(
        subject_id=account.subject_id,
        locale="en" if account.locale == "en" else "ar",
        sealed_code=seal(secret, channel.mailer_key, RecoveryCodeIssued.ce_type),
        expires_at=expires_at,
    )

    async def issue(uow: IdentityUnitOfWork) -> None:
        await SqlRecoveryStore(uow.session).put_code(account.subject_id, code_hash, now, expires_at)
        uow.publish(topics.IDENTITY_EVENTS, event, account.subject_id)

    return issue


def _mailed_recently(current: StoredCode | None, now: datetime, channel: CodeChannel) -> bool:
    if current is None or current.expires_at <= now:
        return False
    return now - current.created_at < timedelta(seconds=channel.resend_after_s)


async def prepare_answer(deps: RecoveryDeps, request: Envelope, body: AnswerRecovery) -> Step:
    """Check the answer (and code); on success replace the password and revoke every session."""
    fields = open_fields(
        deps.crypto, binding(request, body, "sealed"), body.sealed, RecoveryAnswerFields
    )
    attempt = await _lookup(deps, request, fields.identifier, fields.source)
    if attempt.wait_s is not None:
        return _refuse_locked(attempt, attempt.wait_s, ANSWER_FIELDS)
    account = attempt.account
    stored = account.answer_hash if account else deps.dummy_hash
    # Verified for unknown identifiers too, against a dummy, so timing can't tell who exists.
    answer_ok = await deps.crypto.hasher.verify(stored, recovery_answer_key(fields.answer))
    code_ok = await _check_code(deps, attempt.code, fields.code)
    if account is None or not answer_ok or not code_ok:
        wrong_code = attempt.code if not code_ok else None
        return lambda uow: _record_failure(deps, uow, attempt, wrong_code)
    return await _prepare_reset(deps, attempt, account, fields.new_password)


async def _check_code(deps: RecoveryDeps, stored: StoredCode | None, typed: str | None) -> bool:
    if deps.code_channel is None:
        return True
    live = stored if stored is not None and stored.expires_at > datetime.now(UTC) else None
    target = live.code_hash if live else deps.dummy_hash
    # One hash whether or not a code was typed or stored: the time taken tells nothing.
    matches = await deps.crypto.hasher.verify(target, code_key(typed or ""))
    return live is not None and typed is not None and matches


async def _prepare_reset(
    deps: RecoveryDeps, attempt: Attempt, account: RecoveryAccount, new_password: str
) -> Step:
    username, email = await _decrypt(deps.crypto, account, ("username", "email"))
    problems = check_password(new_password, username=username, email=email)
    if problems:
        return lambda uow: _refuse_password(uow, attempt, problems)
    password_hash = await deps.crypto.hasher.hash(normalise_password(new_password))
    code = attempt.code

    async def reset(uow: IdentityUnitOfWork) -> Contract:
        store = SqlRecoveryStore(uow.session)
        now = datetime.now(UTC)
        if code is not None and not await store.use_code(account.subject_id, code.code_hash, now):
            # Spent or replaced since it was checked: a racing request used it first.
            return await _record_failure(deps, uow, attempt, None)
        version = await store.reset_password(account.subject_id, password_hash)
        revoke_tokens(uow, account.subject_id, version)
        throttle = SqlThrottleStore(uow.session, deps.policy)
        # The person proved who they are: login's counter for this identifier starts afresh too.
        for key in (attempt.keys[0], account_key(attempt.index)):
            await throttle.clear(key)
        _audit(uow, attempt, "success", ANSWER_FIELDS)
        return RecoveryCompleted(subject_id=account.subject_id)

    return reset


async def _record_failure(
    deps: RecoveryDeps, uow: IdentityUnitOfWork, attempt: Attempt, wrong_code: StoredCode | None
) -> Contract:
    throttle = SqlThrottleStore(uow.session, deps.policy)
    now = datetime.now(UTC)
    for key in attempt.keys:
        await throttle.fail(key, now)
    if wrong_code is not None and attempt.account is not None and deps.code_channel is not None:
        await SqlRecoveryStore(uow.session).fail_code(
            attempt.account.subject_id, wrong_code.code_hash, deps.code_channel.max_attempts
        )
    _audit(uow, attempt, "failure", ANSWER_FIELDS)
    return ErrorReply.of(ErrorCode.RECOVERY_FAILED)


async def _refuse_password(
    uow: IdentityUnitOfWork, attempt: Attempt, problems: list[str]
) -> Contract:
    _audit(uow, attempt, "denied", ANSWER_FIELDS)
    errors = tuple(field_error("new_password", problem) for problem in problems)
    return ErrorReply.of(ErrorCode.VALIDATION_FAILED, fields=errors)


def _refuse_locked(attempt: Attempt, wait_s: int, fields: tuple[str, ...]) -> Step:
    async def refuse(uow: IdentityUnitOfWork) -> Contract:
        _audit(uow, attempt, "denied", fields)
        return ErrorReply.of(ErrorCode.LOCKED_OUT, retry_after_s=wait_s)

    return refuse


def _audit(
    uow: IdentityUnitOfWork, attempt: Attempt, outcome: str, fields: tuple[str, ...]
) -> None:
    subject = attempt.account.subject_id if attempt.account else "unknown"
    event = audit_event(
        action="recovery",
        subject_id=subject,
        actor_id=subject if attempt.account else "anonymous",
        actor_role="customer",
        fields=fields,
        outcome=outcome,
        purpose="user-dealings",
        request_id=attempt.request.id,
    )
    uow.audit(event.model_copy(update={"source_ref": attempt.keys[1].removeprefix("source:")}))
