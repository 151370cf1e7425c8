"""Login over Kafka: uniform failures, lockout per account and per source, hash upgrades, audit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from moment_auth.principals import Role
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_identity.adapters.hashing import Argon2Params, SecretHasher
from moment_identity.adapters.orm import auth_throttle, users
from moment_identity.adapters.throttle import SqlThrottleStore
from moment_identity.domain.lockout import ThrottlePolicy
from tests.identity.integration.test_registration import fields
from tests.support.audit_store import of, stored_audit
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite

PASSWORD = "a long enough passphrase"


async def register(client: IdentityClient, **overrides: object) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    accepted = await client.register(fields(tag, **overrides))
    return accepted.subject_id, tag


async def login_error(
    client: IdentityClient, identifier: str, password: str, source: str
) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await client.login(identifier, password, source=source)
    return caught.value


async def test_login_by_username_or_email_returns_a_sealed_session(
    identity_client: IdentityClient,
) -> None:
    subject_id, tag = await register(identity_client)
    by_name, session = await identity_client.login(f"USER_{tag}", PASSWORD, source="10.0.0.1")
    by_mail, _ = await identity_client.login(f"{tag}@EXAMPLE.test", PASSWORD, source="10.0.0.1")
    assert by_name == by_mail == subject_id
    assert session.token.count(".") == 2
    assert session.expires_at > datetime.now(UTC)


async def test_every_failure_looks_the_same(identity_client: IdentityClient) -> None:
    _, tag = await register(identity_client)
    wrong_password = await login_error(identity_client, f"user_{tag}", "not the password", "s1")
    unknown_user = await login_error(identity_client, f"nobody_{tag}", PASSWORD, "s1")
    assert wrong_password.reply == unknown_user.reply
    assert wrong_password.code == ErrorCode.LOGIN_FAILED
    assert wrong_password.reply.message_ar


async def test_an_account_locks_after_repeated_failures_even_for_the_right_password(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, tag = await register(identity_client)
    limit = suite.identity.settings.login.account_max_failures
    for attempt in range(limit):
        error = await login_error(
            identity_client, f"user_{tag}", f"wrong {attempt}", f"src-{attempt}"
        )
        assert error.code == ErrorCode.LOGIN_FAILED
    locked = await login_error(identity_client, f"user_{tag}", PASSWORD, "another-source")
    assert locked.code == ErrorCode.LOCKED_OUT
    assert locked.reply.retry_after_s is not None
    assert locked.reply.retry_after_s > 0
    unknown = [
        await login_error(identity_client, f"ghost_{tag}", f"wrong {i}", f"g-{i}")
        for i in range(limit + 1)
    ]
    assert unknown[-1].code == ErrorCode.LOCKED_OUT, "unknown accounts lock the same way"


async def test_a_source_locks_after_failures_across_many_accounts(
    suite: Suite, identity_client: IdentityClient
) -> None:
    _, tag = await register(identity_client)
    source = f"stuffing-{tag}"
    for i in range(suite.identity.settings.login.source_max_failures):
        await login_error(identity_client, f"victim{i}_{tag}", "guess", source)
    blocked = await login_error(identity_client, f"user_{tag}", PASSWORD, source)
    assert blocked.code == ErrorCode.LOCKED_OUT
    subject, _ = await identity_client.login(f"user_{tag}", PASSWORD, source=f"home-{tag}")
    assert subject


async def test_a_minor_cannot_log_in_before_guardian_consent(
    identity_client: IdentityClient,
) -> None:
    _, tag = await register(identity_client, age=14)
    error = await login_error(identity_client, f"user_{tag}", PASSWORD, "s")
    assert error.code == ErrorCode.GUARDIAN_CONSENT_REQUIRED


async def test_the_hash_is_upgraded_on_the_next_successful_login(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    crypto = suite.identity.handlers().crypto
    original = crypto.hasher
    stronger = SecretHasher(original.pepper, Argon2Params(memory_kib=24_576, iterations=3))
    object.__setattr__(crypto, "hasher", stronger)
    try:
        await identity_client.login(f"user_{tag}", PASSWORD, source="s")
    finally:
        object.__setattr__(crypto, "hasher", original)
    async with suite.identity.core.database.sessionmaker() as session:
        stored = (
            await session.execute(
                select(users.c.password_hash).where(users.c.subject_id == subject_id)
            )
        ).scalar_one()
    assert "m=24576,t=3" in stored


async def test_every_attempt_is_audited_without_values(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    await login_error(identity_client, f"user_{tag}", "wrong", "audit-src")
    await identity_client.login(f"user_{tag}", PASSWORD, source="audit-src")
    rows = await stored_audit(suite, *of(subject_id, "login"), expect=2)
    assert sorted(r["outcome"] for r in rows) == ["failure", "success"]
    assert all(r["source_ref"] and "audit-src" not in str(r["source_ref"]) for r in rows)


async def test_concurrent_failures_on_two_connections_are_all_counted(suite: Suite) -> None:
    """Counters are atomic SQL, so instances sharing the database never lose an increment."""
    policy = ThrottlePolicy(account_max_failures=1000)
    key = f"account:test-{uuid.uuid4().hex}"
    database = suite.identity.core.database

    async def fail_once() -> None:
        async with database.sessionmaker() as session, session.begin():
            await SqlThrottleStore(session, policy).fail(key, datetime.now(UTC))

    await asyncio.gather(*(fail_once() for _ in range(20)))
    async with database.sessionmaker() as session:
        failures = (
            await session.execute(
                select(auth_throttle.c.failures).where(auth_throttle.c.key == key)
            )
        ).scalar_one()
    assert failures == 20


async def test_a_lockout_revokes_every_session(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    _, session = await identity_client.login(f"user_{tag}", PASSWORD, source="s")
    for attempt in range(suite.identity.settings.login.account_max_failures):
        await login_error(identity_client, f"user_{tag}", f"wrong {attempt}", "s")
    with pytest.raises(ServiceError) as caught:
        await identity_client.read(session.token, subject_id, ["name"])
    assert caught.value.code == ErrorCode.UNAUTHORISED
    revoked = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_subject") == subject_id
            and header(r, "ce_type") == "moment.identity.principal-tokens-revoked.v1"
        ),
    )
    assert len(revoked) == 1


async def test_an_operator_records_guardian_consent_and_the_minor_can_log_in(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client, age=15)
    from tests.identity.integration.test_reads import staff_token  # noqa: PLC0415 - import cycle

    support = await staff_token(suite, Role.SUPPORT_OPERATOR)
    with pytest.raises(ServiceError) as denied:
        await identity_client.record_guardian_consent(support, subject_id, "case-77")
    assert denied.value.code == ErrorCode.ACCESS_DENIED
    officer = await staff_token(suite, Role.PRIVACY_OFFICER)
    recorded = await identity_client.record_guardian_consent(officer, subject_id, "case-77")
    assert recorded.subject_id == subject_id
    assert (await identity_client.login(f"user_{tag}", PASSWORD, source="s"))[0] == subject_id
    with pytest.raises(ServiceError) as again:
        await identity_client.record_guardian_consent(officer, subject_id, "case-77")
    assert again.value.code == ErrorCode.NOT_FOUND
