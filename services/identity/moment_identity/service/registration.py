"""Register a user: open the sealed fields, validate, encrypt each field under a fresh subject key,
hash the secrets, and write user, wrapped key, domain event and audit event in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.identity import (
    RegisterUser,
    RegistrationAccepted,
    RegistrationFields,
    UserRegistered,
)
from moment_crypto.blind_index import BlindIndexer
from moment_crypto.envelope import FieldCipher, SubjectKey, SubjectKeyring
from moment_identity.adapters.hashing import SecretHasher
from moment_identity.adapters.sealing import SealedInputOpener, binding
from moment_identity.domain.errors import AccountExists
from moment_identity.domain.fields import parse_plaintext
from moment_identity.domain.model import (
    ENCRYPTED_FIELDS,
    User,
    new_subject_id,
    validate_registration,
)
from moment_identity.domain.normalise import (
    display_text,
    email_key,
    recovery_answer_key,
    username_key,
)
from moment_identity.domain.passwords import normalise_password
from moment_identity.service.unit_of_work import IdentityUnitOfWork, audit_event, request_ref


@dataclass(frozen=True)
class Crypto:
    """What registration needs from the crypto layer, built once by the composition root."""

    keyring: SubjectKeyring
    cipher: FieldCipher
    indexer: BlindIndexer
    hasher: SecretHasher
    opener: SealedInputOpener


def open_fields(crypto: Crypto, request: Envelope, body: RegisterUser) -> RegistrationFields:
    plaintext = crypto.opener.open(body.sealed, binding(request, body, "sealed"))
    return parse_plaintext(RegistrationFields, plaintext, RegistrationFields.model_fields)


async def prepare_registration(
    crypto: Crypto, request: Envelope, body: RegisterUser
) -> Callable[[IdentityUnitOfWork], Awaitable[RegistrationAccepted]]:
    """The slow part, outside any transaction: open, validate, key, encrypt, hash."""
    fields = open_fields(crypto, request, body)
    status = validate_registration(fields)
    subject_id = new_subject_id()
    key = await crypto.keyring.new_key(subject_id)
    user = User(
        subject_id=subject_id,
        status=status,
        locale=body.locale,
        key_version=key.version,
        username_index=crypto.indexer.index("username", username_key(fields.username)),
        email_index=crypto.indexer.index("email", email_key(fields.email)),
        encrypted=_encrypt(crypto, key, fields),
        password_hash=await crypto.hasher.hash(normalise_password(fields.password)),
        # Folded (Arabic letter forms, diacritics, spacing, case) so a recovery answer matches
        # however the person types it next time.
        recovery_answer_hash=await crypto.hasher.hash(recovery_answer_key(fields.recovery_answer)),
        created_at=datetime.now(UTC),
    )

    async def store(uow: IdentityUnitOfWork) -> RegistrationAccepted:
        return await _store(uow, request, user, key)

    return store


async def _store(
    uow: IdentityUnitOfWork, request: Envelope, user: User, key: SubjectKey
) -> RegistrationAccepted:
    # The unique indexes make this race-safe; the check only spares a constraint error.
    if await uow.users.exists_by_index(user.username_index, user.email_index):
        raise AccountExists
    await uow.users.add(user, key)
    uow.publish(
        topics.IDENTITY_EVENTS,
        UserRegistered(
            subject_id=user.subject_id,
            status=user.status,
            locale=user.locale,
            registered_at=user.created_at,
        ),
        user.subject_id,
    )
    uow.audit(
        audit_event(
            action="create",
            subject_id=user.subject_id,
            actor_id=request_ref(request.source),
            actor_role="service",
            fields=(*ENCRYPTED_FIELDS, "password", "recovery_answer"),
            outcome="success",
            purpose="user-dealings",
            request_id=request.id,
        )
    )
    return RegistrationAccepted(subject_id=user.subject_id, status=user.status)


def _encrypt(crypto: Crypto, key: SubjectKey, fields: RegistrationFields) -> dict[str, bytes]:
    values = {
        "name": display_text(fields.name),
        "age": str(fields.age),
        "email": display_text(fields.email),
        "username": display_text(fields.username),
        "recovery_question": display_text(fields.recovery_question),
    }
    return {
        name: crypto.cipher.encrypt(key.plaintext, key.subject_id, name, key.version, values[name])
        for name in ENCRYPTED_FIELDS
    }
