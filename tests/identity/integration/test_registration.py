"""Registration over Kafka request/reply against real Tansu, OpenBao and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from moment_client.client import RequestClient
from moment_client.errors import RequestTimeout, ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import RegisterUser, RegistrationAccepted, RegistrationFields
from moment_contracts.sealed import Binding, seal
from moment_crypto.config import VaultConfig
from moment_crypto.envelope import SubjectKeyring
from moment_crypto.errors import DecryptionFailed
from moment_crypto.vault import VaultClient
from moment_identity.adapters.orm import messaging, users
from moment_identity.adapters.repositories import SqlUserRepository
from moment_identity.service.registration import prepare_registration
from moment_persistence.errors import UniqueViolation
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite


def fields(tag: str, **overrides: object) -> RegistrationFields:
    base = {
        "username": f"user_{tag}",
        "email": f"{tag}@example.test",
        "password": "a long enough passphrase",
        "name": "Layla Test",
        "age": 30,
        "recovery_question": "First school?",
        "recovery_answer": "Al Noor",
    }
    return RegistrationFields.model_validate({**base, **overrides})


async def count_users(suite: Suite) -> int:
    async with suite.identity.core.database.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(users))).scalar_one())


async def test_redelivered_request_gets_the_same_reply_and_writes_once(
    suite: Suite, identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    """The same bytes again (a redelivery, or a retry resending its request) get the stored
    reply; the same id on other bytes is refused, never answered with a reply made for others."""
    request_id = str(uuid.uuid4())
    before = await count_users(suite)
    first = await identity_client.register(fields(uuid.uuid4().hex[:8]), request_id=request_id)
    sent = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_COMMANDS,
        where=lambda r: header(r, "ce_id") == request_id,
        timeout_s=60,
    )
    same = RegisterUser.model_validate_json(sent[0].value or b"")
    again = await requests_client.request(
        topics.IDENTITY_COMMANDS, same, RegistrationAccepted, request_id=request_id
    )
    assert again == first
    with pytest.raises(ServiceError) as caught:
        await identity_client.register(fields(uuid.uuid4().hex[:8]), request_id=request_id)
    assert caught.value.code == ErrorCode.REPLAYED_REQUEST
    assert await count_users(suite) == before + 1


async def test_minor_is_registered_pending_guardian_consent(
    identity_client: IdentityClient,
) -> None:
    accepted = await identity_client.register(fields(uuid.uuid4().hex[:8], age=15))
    assert accepted.status == "pending-guardian-consent"


async def test_invalid_fields_get_a_bilingual_error_naming_fields_not_values(
    identity_client: IdentityClient,
) -> None:
    bad = fields(uuid.uuid4().hex[:8], email="not-an-email", password="short")
    with pytest.raises(ServiceError) as caught:
        await identity_client.register(bad)
    reply = caught.value.reply
    assert reply.code == ErrorCode.VALIDATION_FAILED
    assert {f.field for f in reply.fields} == {"email", "password"}
    assert all(f.message_ar and f.message_en for f in reply.fields)
    assert "not-an-email" not in reply.model_dump_json()


async def test_concurrent_registrations_with_one_email_admit_exactly_one(
    identity_client: IdentityClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    attempts = [
        identity_client.register(fields(f"{tag}{i}", email=f"Same.{tag}@Example.test"))
        for i in range(6)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    accepted = [r for r in results if isinstance(r, RegistrationAccepted)]
    conflicts = [r for r in results if isinstance(r, ServiceError)]
    assert len(accepted) == 1
    assert len(conflicts) == 5
    assert {c.code for c in conflicts} == {ErrorCode.CONFLICT}


async def test_schema_violation_gets_an_error_reply_and_a_dead_letter(
    suite: Suite, requests_client: RequestClient, identity_client: IdentityClient
) -> None:
    identity_client.forget_sealing_key()  # another test may have rotated it (erasure does)
    key = await identity_client.sealing_key()
    request_id = str(uuid.uuid4())
    bound = identity_client.binding(RegisterUser.ce_type, request_id, "sealed")
    box = seal(b'{"username": 5}', key, bound)
    with pytest.raises(ServiceError) as caught:
        await requests_client.request(
            topics.IDENTITY_COMMANDS,
            RegisterUser(sealed=box),
            RegistrationAccepted,
            request_id=request_id,
        )
    # The box opened, but its content broke the inner contract: a validation error, field names
    # only.
    assert caught.value.code == ErrorCode.VALIDATION_FAILED


async def test_request_without_a_server_times_out_with_a_typed_error(
    requests_client: RequestClient,
) -> None:
    with pytest.raises(RequestTimeout) as caught:
        await requests_client.request(
            topics.CONSENT_COMMANDS,
            RegisterUser.model_construct(),
            RegistrationAccepted,
            timeout_s=0.5,
        )
    assert caught.value.code == ErrorCode.TIMEOUT


async def test_vault_unreachable_is_a_clear_error_and_writes_nothing(
    suite: Suite,
    identity_client: IdentityClient,
    unreachable_vault_config: VaultConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handlers = suite.identity.handlers()
    crypto = handlers.crypto
    broken = SubjectKeyring(VaultClient(unreachable_vault_config), "identity-subject-keys")
    object.__setattr__(crypto, "keyring", broken)
    tag = uuid.uuid4().hex[:8]
    before = await count_users(suite)
    try:
        with pytest.raises(ServiceError) as caught:
            await identity_client.register(fields(tag, name="Vault Canary Name"))
    finally:
        object.__setattr__(
            crypto, "keyring", SubjectKeyring(suite.identity.vault, "identity-subject-keys")
        )
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert caught.value.reply.retryable
    assert await count_users(suite) == before
    async with suite.identity.core.database.sessionmaker() as session:
        payloads = (await session.execute(select(messaging.outbox.c.payload))).scalars().all()
    assert not any(b"Vault Canary Name" in p for p in payloads)
    assert "Vault Canary Name" not in caplog.text
    assert tag not in caplog.text


class RegisterUserV9(Contract):
    """A version identity does not serve."""

    ce_type: ClassVar[str] = "moment.identity.register-user.v9"


async def test_unknown_version_gets_an_error_reply_and_a_dead_letter(
    suite: Suite, requests_client: RequestClient
) -> None:
    request_id = str(uuid.uuid4())
    with pytest.raises(ServiceError) as caught:
        await requests_client.request(
            topics.IDENTITY_COMMANDS, RegisterUserV9(), RegistrationAccepted, request_id=request_id
        )
    assert caught.value.code == ErrorCode.UNKNOWN_TYPE
    assert caught.value.reply.message_ar
    dead = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.dlq(topics.IDENTITY_COMMANDS),
        where=lambda r: header(r, "ce_id") == request_id,
    )
    assert [header(r, "dlq_reason") for r in dead] == ["unknown-type"]


async def test_ciphertext_moved_to_another_subject_or_field_does_not_decrypt(
    suite: Suite, identity_client: IdentityClient
) -> None:
    first = await identity_client.register(fields(uuid.uuid4().hex[:8]))
    second = await identity_client.register(fields(uuid.uuid4().hex[:8]))
    crypto = suite.identity.handlers().crypto
    async with suite.identity.core.database.sessionmaker() as session:
        repo = SqlUserRepository(session)
        stolen = await repo.encrypted_fields(first.subject_id)
        own_key = await repo.wrapped_key(second.subject_id)
        first_key = await repo.wrapped_key(first.subject_id)
    assert stolen
    assert own_key
    assert first_key
    key_b = await crypto.keyring.unwrap(*own_key)
    key_a = await crypto.keyring.unwrap(*first_key)
    assert crypto.cipher.decrypt(key_a, first.subject_id, "email", 1, stolen["email"]).endswith(
        "@example.test"
    )
    with pytest.raises(DecryptionFailed):  # pasted into another subject's record
        crypto.cipher.decrypt(key_b, second.subject_id, "email", 1, stolen["email"])
    with pytest.raises(DecryptionFailed):  # right key, but moved to another field
        crypto.cipher.decrypt(key_a, first.subject_id, "name", 1, stolen["email"])


async def test_two_instances_racing_on_one_email_admit_exactly_one(
    suite: Suite, identity_client: IdentityClient
) -> None:
    """Below the consumer: two prepared registrations commit at once; the unique index decides."""
    identity_client.forget_sealing_key()  # another test may have rotated it (erasure does)
    key = await identity_client.sealing_key()
    handlers = suite.identity.handlers()
    tag = uuid.uuid4().hex[:8]
    steps = []
    for i in range(2):
        data = fields(f"{tag}{i}", email=f"race.{tag}@example.test")
        request_id = str(uuid.uuid4())
        bound = Binding(RegisterUser.ce_type, request_id, "/test", "sealed")
        body = RegisterUser(sealed=seal(data.model_dump_json().encode(), key, bound))
        request = Envelope.of(body, source="/test", id=request_id)
        steps.append(await prepare_registration(handlers.crypto, request, body))

    async def commit(step):  # type: ignore[no-untyped-def]
        async with handlers.uow_factory() as uow:
            with uow.errors():
                await step(uow)
            await uow.commit()

    results = await asyncio.gather(*(commit(s) for s in steps), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert [type(r) for r in results if r is not None] == [UniqueViolation]
