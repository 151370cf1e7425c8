"""Rectification, export and erasure over Kafka, authorised, audited and never in clear."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from moment_auth.principals import Role
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_consent.adapters.orm import subjects
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_contracts.identity import RegisterUser
from moment_crypto.errors import CryptoError
from moment_identity.adapters.orm import erasures, subject_keys, users
from moment_identity.adapters.sealing import SealedInputOpener
from moment_identity.domain.errors import SealedInputRejected
from tests.identity.integration.test_login import PASSWORD, register
from tests.identity.integration.test_reads import customer_token, staff_token
from tests.identity.integration.test_registration import fields
from tests.support.audit_store import of, stored_audit
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite
from tests.support.waiting import eventually


async def test_a_customer_rectifies_their_own_fields(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    new_email = f"new.{tag}@example.test"
    updated = await identity_client.update(token, subject_id, {"name": "سارة", "email": new_email})
    assert updated.fields == ("email", "name")
    values = await identity_client.read(token, subject_id, ["name", "email"])
    assert values == {"name": "سارة", "email": new_email}
    again, _ = await identity_client.login(new_email.upper(), PASSWORD, source="s")
    assert again == subject_id
    events = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_subject") == subject_id
            and header(r, "ce_type") == "moment.identity.profile-updated.v1"
        ),
    )
    assert len(events) == 1
    assert b"email" in (events[0].value or b"")
    assert new_email.encode() not in (events[0].value or b"")


async def test_rectification_respects_roles_and_uniqueness(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    _, other = await register(identity_client)
    operator = await staff_token(suite, Role.SUPPORT_OPERATOR)
    await identity_client.update(operator, subject_id, {"name": "Fixed"}, purpose="user-dealings")
    with pytest.raises(ServiceError) as beyond:
        await identity_client.update(
            operator, subject_id, {"recovery_question": "x?"}, purpose="user-dealings"
        )
    assert beyond.value.code == ErrorCode.ACCESS_DENIED
    token = await customer_token(identity_client, tag)
    with pytest.raises(ServiceError) as taken:
        await identity_client.update(token, subject_id, {"email": f"{other}@example.test"})
    assert taken.value.code == ErrorCode.CONFLICT
    with pytest.raises(ServiceError) as invalid:
        await identity_client.update(token, subject_id, {"age": "not a number"})
    assert invalid.value.code == ErrorCode.VALIDATION_FAILED


async def test_export_holds_everything_and_only_the_person_or_privacy_officer_gets_it(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client, name="نورة")
    document = await identity_client.export(await customer_token(identity_client, tag), subject_id)
    assert document.personal_data["name"] == "نورة"
    assert set(document.personal_data) == {
        "name",
        "age",
        "email",
        "username",
        "recovery_question",
    }
    assert document.account.status == "active"
    officer = await staff_token(suite, Role.PRIVACY_OFFICER)
    assert (await identity_client.export(officer, subject_id)).subject_id == subject_id
    with pytest.raises(ServiceError) as denied:
        await identity_client.export(await staff_token(suite, Role.SUPPORT_OPERATOR), subject_id)
    assert denied.value.code == ErrorCode.ACCESS_DENIED


async def test_erasure_crypto_shreds_the_subject(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client, name="Erase Me")
    token = await customer_token(identity_client, tag)
    database = suite.identity.core.database
    async with database.sessionmaker() as session:
        row = (await session.execute(select(users).where(users.c.subject_id == subject_id))).one()
        wrapped = (
            await session.execute(
                select(subject_keys.c.wrapped_key).where(subject_keys.c.subject_id == subject_id)
            )
        ).scalar_one()
    captured_name = row.name_ct
    crypto = suite.identity.handlers().crypto

    done = await identity_client.erase(token, subject_id)
    assert done.subject_id == subject_id
    async with database.sessionmaker() as session:
        assert (
            await session.execute(select(users).where(users.c.subject_id == subject_id))
        ).first() is None
        assert (
            await session.execute(
                select(subject_keys).where(subject_keys.c.subject_id == subject_id)
            )
        ).first() is None
        assert (
            await session.execute(select(erasures).where(erasures.c.subject_id == subject_id))
        ).first() is not None
    # Nothing anywhere still holds the key: not the database, not the process cache.
    assert crypto.keyring.cache.get(subject_id, 1) is None
    assert wrapped not in str(row.name_ct)
    with pytest.raises(CryptoError):
        # Without its wrapped key the ciphertext is noise; a guessed key fails authentication.
        crypto.cipher.decrypt(bytes(32), subject_id, "name", 1, captured_name)
    with pytest.raises(ServiceError) as gone:
        await identity_client.read(
            await staff_token(suite, Role.PRIVACY_OFFICER),
            subject_id,
            ["name"],
            purpose="user-dealings",
        )
    assert gone.value.code in {ErrorCode.NOT_FOUND, ErrorCode.UNAUTHORISED}
    erased = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_subject") == subject_id
            and header(r, "ce_type") == "moment.identity.subject-erased.v1"
        ),
    )
    assert len(erased) == 1

    async def forgotten() -> bool:
        async with suite.consent.core.database.sessionmaker() as session:
            known = (
                await session.execute(select(subjects).where(subjects.c.subject_id == subject_id))
            ).first()
        return known is None

    await eventually(forgotten, what="consent forgets the erased subject")
    rows = await audit_rows_for(suite, subject_id, "erase")
    assert [r["outcome"] for r in rows] == ["success"]


async def audit_rows_for(
    suite: Suite, subject_id: str, action: str, expect: int = 1
) -> list[dict[str, object]]:
    return await stored_audit(suite, *of(subject_id, action), expect=expect)


async def test_only_the_person_or_the_privacy_officer_may_erase(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, _ = await register(identity_client)
    _, other = await register(identity_client)
    stranger = await customer_token(identity_client, other)
    with pytest.raises(ServiceError) as denied:
        await identity_client.erase(stranger, subject_id)
    assert denied.value.code == ErrorCode.ACCESS_DENIED
    officer = await staff_token(suite, Role.PRIVACY_OFFICER)
    assert (await identity_client.erase(officer, subject_id)).subject_id == subject_id
    assert [r["outcome"] for r in await audit_rows_for(suite, subject_id, "erase", 2)] == [
        "denied",
        "success",
    ]


async def test_erasure_also_shreds_requests_captured_from_kafka(
    suite: Suite, identity_client: IdentityClient
) -> None:
    """Kafka's history holds the registration, sealed to identity's transport key. Erasure rotates
    that key and destroys the old one, so the captured request no longer opens anywhere."""
    request_id = str(uuid.uuid4())
    tag = uuid.uuid4().hex[:10]
    identity_client.forget_sealing_key()  # sealed to the current key: one copy on the topic
    accepted = await identity_client.register(
        fields(tag, name="Kafka Shred Canary"), request_id=request_id
    )
    captured = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_COMMANDS,
        where=lambda r: header(r, "ce_id") == request_id,
    )
    request = RegisterUser.model_validate_json(captured[0].value or b"")
    box = request.sealed
    opener = suite.identity.handlers().crypto.opener
    bound = identity_client.binding(
        RegisterUser.ce_type, request_id, "sealed", reply_key=request.reply_key or ""
    )
    assert b"Kafka Shred Canary" in opener.open(box, bound)

    await identity_client.erase(await customer_token(identity_client, tag), accepted.subject_id)

    with pytest.raises(SealedInputRejected):
        opener.open(box, bound)
    path = suite.identity.settings.crypto.sealing_key_path
    with pytest.raises(SealedInputRejected):  # what any instance, or a Vault reader, now holds
        (await SealedInputOpener.load(suite.identity.vault, path)).open(box, bound)
    # The storefront client notices nothing: it re-seals to the new key by itself.
    again = await identity_client.register(fields(uuid.uuid4().hex[:10]))
    assert again.status == "active"
