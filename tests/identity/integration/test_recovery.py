"""Password recovery over Kafka: the question sealed, a stable decoy for unknown identifiers, a
reset that revokes sessions, lockout apart from login's, every attempt audited, the mailed code."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select, update

from moment_audit.adapters.orm import audit_records
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_contracts.principals import PrincipalTokensRevoked
from moment_contracts.recovery import (
    RecoveryChallenge,
    RecoveryCode,
    RecoveryCodeIssued,
    RecoveryQuestion,
    RecoveryStartFields,
    StartRecovery,
)
from moment_contracts.sealed import SealError, open_box, public_key_to_text, seal
from moment_identity.adapters.orm import recovery_codes, users
from moment_identity.service.handlers import IdentityHandlers
from moment_identity.service.recovery import DECOY_QUESTIONS, CodeChannel
from tests.identity.integration.test_login import PASSWORD, login_error, register
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_all, read_topic, record_bytes
from tests.support.suite import Suite

QUESTION = "ما اسم أول مدرسة درست فيها؟"
ANSWER = "مدرسة الأمل الابتدائية"
# The same answer as people type it later: other letter forms, harakat, tatweel, extra spaces.
RETYPED = "  مدرسه الامـل  الإبتدائيَّه "
NEW_PASSWORD = "a brand new recovery passphrase"
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


async def registered(client: IdentityClient) -> tuple[str, str]:
    return await register(client, recovery_question=QUESTION, recovery_answer=ANSWER)


async def answer_error(client: IdentityClient, identifier: str, answer: str, **kw: Any) -> Any:
    kw.setdefault("source", "recovery-src")
    with pytest.raises(ServiceError) as caught:
        await client.answer_recovery(identifier, answer, kw.pop("password", NEW_PASSWORD), **kw)
    return caught.value


async def raw_challenge(
    requests: RequestClient, client: IdentityClient, identifier: str
) -> tuple[RecoveryChallenge, X25519PrivateKey]:
    reply_key = X25519PrivateKey.generate()
    client.forget_sealing_key()  # an erasure elsewhere in the session may have rotated it
    fields = RecoveryStartFields(identifier=identifier, source="raw")
    request_id = str(uuid.uuid4())
    reply_text = public_key_to_text(reply_key.public_key())
    bound = client.binding(StartRecovery.ce_type, request_id, "sealed", reply_key=reply_text)
    sealed = seal(fields.model_dump_json().encode(), await client.sealing_key(), bound)
    body = StartRecovery(sealed=sealed, reply_key=reply_text)
    reply = await requests.request(
        topics.IDENTITY_COMMANDS, body, RecoveryChallenge, request_id=request_id
    )
    return reply, reply_key


async def session_version(suite: Suite, subject_id: str) -> int:
    async with suite.identity.core.database.sessionmaker() as session:
        query = select(users.c.session_version).where(users.c.subject_id == subject_id)
        return int((await session.execute(query)).scalar_one())


async def audited(suite: Suite, where: Any, expect: int) -> list[dict[str, Any]]:
    """The stored audit records of recovery attempts matching `where`, once `expect` arrived."""
    return await stored_audit(suite, audit_records.c.action == "recovery", where, expect=expect)


async def issued_codes(suite: Suite, subject_id: str, expect: int = 1) -> list[Any]:
    return await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        expect=expect,
        where=lambda r: (
            header(r, "ce_subject") == subject_id
            and header(r, "ce_type") == RecoveryCodeIssued.ce_type
        ),
    )


def mailed_code(record: Any, mailer: X25519PrivateKey) -> RecoveryCode:
    event = RecoveryCodeIssued.model_validate_json(record.value)
    return RecoveryCode.model_validate_json(
        open_box(event.sealed_code, mailer, RecoveryCodeIssued.ce_type)
    )


@pytest.fixture
def mailer(suite: Suite) -> Iterator[tuple[X25519PrivateKey, IdentityHandlers]]:
    """The code channel switched on in the running service, with a mailer key made for the test."""
    private = X25519PrivateKey.generate()
    handlers = suite.identity.handlers()
    original = handlers.recovery_deps
    channel = CodeChannel(mailer_key=private.public_key(), max_attempts=3)
    object.__setattr__(
        handlers, "recovery_deps", dataclasses.replace(original, code_channel=channel)
    )
    yield private, handlers
    object.__setattr__(handlers, "recovery_deps", original)


async def test_the_question_comes_back_sealed_and_opens_to_what_was_registered(
    identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    _, tag = await registered(identity_client)
    by_name = await identity_client.start_recovery(f"USER_{tag}", source="s")
    by_mail = await identity_client.start_recovery(f"{tag}@example.test", source="s")
    assert by_name == by_mail == RecoveryQuestion(question=QUESTION, code_required=False)
    challenge, reply_key = await raw_challenge(requests_client, identity_client, f"user_{tag}")
    assert QUESTION not in challenge.model_dump_json()
    with pytest.raises(SealError):
        open_box(challenge.sealed_question, X25519PrivateKey.generate(), RecoveryChallenge.ce_type)
    opened = open_box(challenge.sealed_question, reply_key, RecoveryChallenge.ce_type)
    assert RecoveryQuestion.model_validate_json(opened).question == QUESTION


async def test_an_unknown_identifier_gets_a_stable_decoy_of_the_same_shape(
    identity_client: IdentityClient, requests_client: RequestClient
) -> None:
    ghost = f"ghost_{uuid.uuid4().hex[:10]}"
    first = await identity_client.start_recovery(ghost, source="s1")
    again = await identity_client.start_recovery(ghost, source="s2")
    assert first == again
    assert first.question in DECOY_QUESTIONS["ar"]
    assert not first.code_required
    english = await identity_client.start_recovery(ghost, source="s1", locale="en")
    assert english.question in DECOY_QUESTIONS["en"]
    _, tag = await registered(identity_client)
    real, _ = await raw_challenge(requests_client, identity_client, f"user_{tag}")
    decoy, _ = await raw_challenge(requests_client, identity_client, ghost)
    assert real.model_dump().keys() == decoy.model_dump().keys()
    assert real.sealed_question.model_dump().keys() == decoy.sealed_question.model_dump().keys()


async def test_the_answer_typed_differently_resets_the_password_and_revokes_sessions(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await registered(identity_client)
    await identity_client.login(f"user_{tag}", PASSWORD, source="home")
    assert await session_version(suite, subject_id) == 0
    done = await identity_client.answer_recovery(
        f"{tag}@example.test", RETYPED, NEW_PASSWORD, source="home"
    )
    assert done == subject_id
    assert await session_version(suite, subject_id) == 1, "every earlier token is revoked"
    old = await login_error(identity_client, f"user_{tag}", PASSWORD, "home")
    assert old.code == ErrorCode.LOGIN_FAILED
    subject, _ = await identity_client.login(f"user_{tag}", NEW_PASSWORD, source="home")
    assert subject == subject_id
    revoked = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_subject") == subject_id
            and header(r, "ce_type") == PrincipalTokensRevoked.ce_type
        ),
    )
    event = PrincipalTokensRevoked.model_validate_json(revoked[0].value or b"")
    assert event.min_session_version == 1


async def test_every_failure_looks_the_same(identity_client: IdentityClient) -> None:
    _, tag = await registered(identity_client)
    wrong = await answer_error(identity_client, f"user_{tag}", "مدرسة أخرى")
    unknown = await answer_error(identity_client, f"nobody_{tag}", ANSWER)
    assert wrong.reply == unknown.reply
    assert wrong.code == ErrorCode.RECOVERY_FAILED
    assert wrong.reply.message_ar
    assert wrong.reply.message_en


async def test_a_weak_new_password_is_named_only_after_a_right_answer(
    identity_client: IdentityClient,
) -> None:
    _, tag = await registered(identity_client)
    before = await answer_error(identity_client, f"user_{tag}", "خطأ", password="password")
    assert before.code == ErrorCode.RECOVERY_FAILED
    weak = await answer_error(identity_client, f"user_{tag}", ANSWER, password=f"user_{tag}!")
    assert weak.code == ErrorCode.VALIDATION_FAILED
    assert {(f.field, f.code) for f in weak.reply.fields} == {("new_password", "contains-identity")}
    assert all(f.message_ar and f.message_en for f in weak.reply.fields)
    assert tag not in weak.reply.model_dump_json()


async def test_wrong_answers_lock_recovery_but_not_login(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, tag = await registered(identity_client)
    limit = suite.identity.settings.login.account_max_failures
    for attempt in range(limit):
        error = await answer_error(identity_client, f"user_{tag}", f"wrong {attempt}")
        assert error.code == ErrorCode.RECOVERY_FAILED
    locked = await answer_error(identity_client, f"user_{tag}", ANSWER, source="elsewhere")
    assert locked.code == ErrorCode.LOCKED_OUT
    assert locked.reply.retry_after_s is not None
    assert locked.reply.retry_after_s > 0
    with pytest.raises(ServiceError) as start:
        await identity_client.start_recovery(f"user_{tag}", source="elsewhere")
    assert start.value.code == ErrorCode.LOCKED_OUT
    subject, _ = await identity_client.login(f"user_{tag}", PASSWORD, source="elsewhere")
    assert subject, "a recovery lockout leaves login alone"
    ghost = [
        await answer_error(identity_client, f"ghost_{tag}", f"w{i}", source=f"g{i}")
        for i in range(limit + 1)
    ]
    assert ghost[-1].code == ErrorCode.LOCKED_OUT, "unknown identifiers lock the same way"


async def test_every_attempt_is_audited_without_values(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await registered(identity_client)
    await identity_client.start_recovery(f"user_{tag}", source="audit-src")
    await answer_error(identity_client, f"user_{tag}", "wrong", source="audit-src")
    await identity_client.answer_recovery(f"user_{tag}", ANSWER, NEW_PASSWORD, source="audit-src")
    rows = await audited(suite, audit_records.c.subject_id == subject_id, expect=3)
    assert sorted(r["outcome"] for r in rows) == ["failure", "success", "success"]
    assert {tuple(r["fields"]) for r in rows} == {
        ("recovery_question",),
        ("recovery_answer", "password"),
    }
    assert all(r["source_ref"] and "audit-src" not in str(r["source_ref"]) for r in rows)
    request_id = str(uuid.uuid4())
    await identity_client.start_recovery(f"nobody_{tag}", source="s", request_id=request_id)
    unknown = await audited(suite, audit_records.c.request_id == request_id, expect=1)
    assert [(r["subject_id"], r["actor_id"], r["outcome"]) for r in unknown] == [
        ("unknown", "anonymous", "failure")
    ]


async def test_with_the_code_channel_the_answer_alone_is_not_enough(
    suite: Suite,
    identity_client: IdentityClient,
    mailer: tuple[X25519PrivateKey, IdentityHandlers],
) -> None:
    subject_id, tag = await registered(identity_client)
    question = await identity_client.start_recovery(f"user_{tag}", source="s")
    assert question.code_required
    (record,) = await issued_codes(suite, subject_id)
    code = mailed_code(record, mailer[0])
    assert code.subject_id == subject_id
    assert len(code.code) == 8
    assert code.code.isdigit()
    raw = (record.value or b"") + b"".join(v for _, v in record.headers)
    assert code.code.encode() not in raw
    assert tag.encode() not in raw, "no e-mail address or username on the topic"
    alone = await answer_error(identity_client, f"user_{tag}", ANSWER)
    wrong = await answer_error(identity_client, f"user_{tag}", ANSWER, code="00000000")
    assert alone.reply == wrong.reply
    assert alone.code == ErrorCode.RECOVERY_FAILED
    typed = code.code.translate(ARABIC_DIGITS)  # typed on an Arabic keyboard
    done = await identity_client.answer_recovery(
        f"user_{tag}", RETYPED, NEW_PASSWORD, source="s", code=typed
    )
    assert done == subject_id
    reused = await answer_error(identity_client, f"user_{tag}", ANSWER, code=code.code)
    assert reused.code == ErrorCode.RECOVERY_FAILED, "a code works once"


async def test_a_code_dies_after_too_many_wrong_tries_or_when_expired(
    suite: Suite,
    identity_client: IdentityClient,
    mailer: tuple[X25519PrivateKey, IdentityHandlers],
) -> None:
    subject_id, tag = await registered(identity_client)
    await identity_client.start_recovery(f"user_{tag}", source="s")
    (record,) = await issued_codes(suite, subject_id)
    code = mailed_code(record, mailer[0]).code
    for i in range(mailer[1].recovery_deps.code_channel.max_attempts):  # type: ignore[union-attr]
        await answer_error(identity_client, f"user_{tag}", ANSWER, code=f"{i:08d}", source=f"s{i}")
    dead = await answer_error(identity_client, f"user_{tag}", ANSWER, code=code, source="s9")
    assert dead.code == ErrorCode.RECOVERY_FAILED
    async with suite.identity.core.database.sessionmaker() as session:
        query = select(recovery_codes).where(recovery_codes.c.subject_id == subject_id)
        assert (await session.execute(query)).first() is None

    other_id, other = await registered(identity_client)
    await identity_client.start_recovery(f"user_{other}", source="s")
    (record,) = await issued_codes(suite, other_id)
    async with suite.identity.core.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(recovery_codes)
            .where(recovery_codes.c.subject_id == other_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    late = mailed_code(record, mailer[0]).code
    expired = await answer_error(identity_client, f"user_{other}", ANSWER, code=late)
    assert expired.code == ErrorCode.RECOVERY_FAILED


async def test_no_question_answer_code_or_password_on_any_topic(
    suite: Suite,
    identity_client: IdentityClient,
    requests_client: RequestClient,
    mailer: tuple[X25519PrivateKey, IdentityHandlers],
) -> None:
    marker = uuid.uuid4().hex[:12]
    question, answer, source = f"سؤال الكناري {marker}؟", f"جواب الكناري {marker}", f"10.{marker}"
    subject_id, tag = await register(
        identity_client, recovery_question=question, recovery_answer=answer
    )
    await identity_client.start_recovery(f"user_{tag}", source=source)
    (record,) = await issued_codes(suite, subject_id)
    code = mailed_code(record, mailer[0]).code
    await answer_error(identity_client, f"user_{tag}", answer, source=source)
    await identity_client.answer_recovery(
        f"user_{tag}", answer, NEW_PASSWORD, source=source, code=code
    )
    secrets = [question, answer, marker, tag, source, code, NEW_PASSWORD]
    for topic in (
        topics.IDENTITY_COMMANDS,
        topics.IDENTITY_EVENTS,
        topics.AUDIT_EVENTS,
        requests_client.reply_topic,
    ):
        records = await read_all(suite.kafka.bootstrap_servers, topic)
        assert records, topic
        blob = b"".join(record_bytes(r) for r in records)
        for value in secrets:
            assert value.encode() not in blob, f"plaintext found on {topic}"
