"""Tokens identity revoked are refused by audit's query API, within a measured, bounded time.

Each test revokes a session the way identity does (erasure, staff deactivation, lockout), then
replays the old token against audit.commands, as whoever still holds it would, until audit
refuses it. The measured propagation time (identity's commit, outbox relay, identity.events,
audit's feed, audit's table) is recorded as the `revocation_propagation_ms` property.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import DefaultSubscriber

from moment_audit.adapters.kafka import REVOCATIONS_GROUP_ID
from moment_audit.adapters.orm import metadata, revocations
from moment_audit.service.queries import LazyVerifier, to_error_reply
from moment_auth.claims import TokenClaims
from moment_auth.errors import TokenRevoked
from moment_auth.principals import Principal, Role
from moment_auth.revocation import RevocationRule, check_revoked
from moment_auth.tokens import TokenSigner
from moment_client.audit import AuditClient
from moment_client.client import RequestClient
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.errors import ErrorCode
from moment_contracts.principals import PrincipalTokensRevoked
from moment_devstack.processes import free_port
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from moment_persistence.errors import DatabaseUnavailable
from moment_persistence.unit_of_work import SqlUnitOfWork
from moment_runtime.revocations import SqlRevocationStore, register_revocation_feed
from tests.identity.integration.test_login import login_error, register
from tests.identity.integration.test_principals import new_staff, staff_admin
from tests.identity.integration.test_reads import customer_token
from tests.support.kafka import header, read_topic
from tests.support.produce import publish
from tests.support.suite import Suite

RecordProperty = Callable[[str, object], None]
# Generous for a busy 2-core machine; the measured figure is typically far below it.
BOUND_S = 30.0


@pytest.fixture(scope="module")
def audit_client(requests_client: RequestClient) -> AuditClient:
    return AuditClient(requests_client)


async def _refusal(client: AuditClient, token: str, subject_id: str) -> ErrorCode | None:
    try:
        await client.access_history(token, subject_id=subject_id)
    except ServiceError as exc:
        return exc.code
    return None


async def refused_after(client: AuditClient, token: str, subject_id: str) -> float:
    """Seconds until audit refuses `token`, replaying it every 50 ms; fails after BOUND_S."""
    started = time.perf_counter()
    while (code := await _refusal(client, token, subject_id)) is None:
        elapsed = time.perf_counter() - started
        assert elapsed < BOUND_S, f"a revoked token was still accepted after {elapsed:.1f} s"
        await asyncio.sleep(0.05)
    assert code == ErrorCode.UNAUTHORISED
    return time.perf_counter() - started


async def _stored(suite: Suite, principal_id: str, expect: RevocationRule) -> RevocationRule:
    """The rule in audit's table, read through a database connection of its own (as another
    audit instance, or this one after a restart, would read it)."""
    deadline = time.monotonic() + BOUND_S
    async with Database(DatabaseConfig(url=suite.urls["audit"])) as database:
        store = SqlRevocationStore(lambda: SqlUnitOfWork(database, metadata=metadata), revocations)
        while (rule := await store.rule(principal_id)) != expect:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return rule or RevocationRule()


def _record(record_property: RecordProperty, what: str, seconds: float) -> None:
    record_property("revocation_propagation_ms", round(seconds * 1000, 1))
    print(f"revocation propagation ({what}): {seconds * 1000:.0f} ms")


async def test_an_erased_customer_s_token_is_refused_for_good(
    suite: Suite,
    identity_client: IdentityClient,
    audit_client: AuditClient,
    record_property: RecordProperty,
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    assert await audit_client.access_history(token, subject_id=subject_id) is not None
    await identity_client.erase(token, subject_id)
    _record(record_property, "erasure", await refused_after(audit_client, token, subject_id))
    rule = await _stored(suite, subject_id, RevocationRule(1, 0, permanent=True))
    assert rule == RevocationRule(1, 0, permanent=True)
    # Even a token identity signed later, with any session version, is no good any more.
    signer = TokenSigner(suite.identity.vault)
    later = (await signer.issue(Principal.customer(subject_id, 10**6))).token
    with pytest.raises(ServiceError) as caught:
        await audit_client.access_history(later, subject_id=subject_id)
    assert caught.value.code == ErrorCode.UNAUTHORISED
    await _replayed_events_cannot_relax(suite, subject_id)


async def _replayed_events_cannot_relax(suite: Suite, subject_id: str) -> None:
    """Anyone who can write identity.events replays an old revocation for the erased subject;
    a later, stricter one on the same partition shows when the replay has been consumed."""
    forged = [
        Envelope.of(
            PrincipalTokensRevoked(principal_id=subject_id, min_session_version=version),
            source="/moment/identity",
            subject=subject_id,
        )
        for version in (1, 2)
    ]
    await publish(suite.kafka.bootstrap_servers, topics.IDENTITY_EVENTS, *forged)
    rule = await _stored(suite, subject_id, RevocationRule(2, 0, permanent=True))
    assert rule == RevocationRule(2, 0, permanent=True), "the erasure's rule stays permanent"


async def test_a_deactivated_staff_member_s_token_is_refused(
    suite: Suite,
    identity_client: IdentityClient,
    audit_client: AuditClient,
    record_property: RecordProperty,
) -> None:
    staff_id, username, password = await new_staff(suite, Role.PRIVACY_OFFICER)
    _, _, session = await identity_client.staff_login(username, password, source="desk-rev")
    someone = str(uuid.uuid4())
    assert await audit_client.access_history(session.token, subject_id=someone) == ()
    await staff_admin(suite).deactivate(username)
    seconds = await refused_after(audit_client, session.token, someone)
    _record(record_property, "staff deactivation", seconds)
    assert await _stored(suite, staff_id, RevocationRule(1)) == RevocationRule(1)


async def test_a_lockout_ends_old_sessions_but_not_the_next_one(
    suite: Suite,
    identity_client: IdentityClient,
    audit_client: AuditClient,
    record_property: RecordProperty,
) -> None:
    subject_id, tag = await register(identity_client)
    old = await customer_token(identity_client, tag)
    assert await audit_client.access_history(old, subject_id=subject_id) is not None
    for attempt in range(suite.identity.settings.login.account_max_failures):
        await login_error(identity_client, f"user_{tag}", f"wrong {attempt}", f"rev-{attempt}")
    _record(record_property, "lockout", await refused_after(audit_client, old, subject_id))
    # The session identity issues next carries the raised version, and is accepted.
    signer = TokenSigner(suite.identity.vault)
    fresh = (await signer.issue(Principal.customer(subject_id, 1))).token
    assert await audit_client.access_history(fresh, subject_id=subject_id) is not None


async def test_every_instance_and_a_restart_see_a_revocation_another_instance_consumed(
    suite: Suite,
) -> None:
    """What a second audit instance does per token: one look-up in the shared table, with no
    event of its own to have consumed."""
    principal_id = f"p-{uuid.uuid4().hex[:8]}"
    claims = TokenClaims.for_principal(
        Principal.customer(principal_id, 0), issued_at=int(time.time()), ttl_s=900
    )
    async with Database(DatabaseConfig(url=suite.urls["audit"])) as other:
        store = SqlRevocationStore(lambda: SqlUnitOfWork(other, metadata=metadata), revocations)
        await check_revoked(store, claims)
        # As the feed on the instance that consumed the event records it.
        consumer = SqlRevocationStore(suite.audit.unit_of_work, revocations)
        await consumer.record(principal_id, RevocationRule(min_session_version=1))
        with pytest.raises(TokenRevoked):
            await check_revoked(store, claims)


class CountingStore(SqlRevocationStore):
    """A second instance's store: the same table, remembering which principals it recorded."""

    def __init__(self, database: Database) -> None:
        super().__init__(lambda: SqlUnitOfWork(database, metadata=metadata), revocations)
        self.recorded: set[str] = set()

    async def record(self, principal_id: str, rule: RevocationRule) -> None:
        await super().record(principal_id, rule)
        self.recorded.add(principal_id)


async def _owned_partitions(subscriber: DefaultSubscriber) -> set[int]:
    deadline = time.monotonic() + BOUND_S
    while not (owned := {tp.partition for tp in subscriber.consumer.assignment()}):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the second feed never got a partition"
        await asyncio.sleep(0.2)
    return owned


async def _revoked_on(suite: Suite, staff_id: str) -> int:
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: (
            header(r, "ce_subject") == staff_id
            and header(r, "ce_type") == PrincipalTokensRevoked.ce_type
        ),
    )
    return int(next(r.partition for r in records if header(r, "ce_subject") == staff_id))


@pytest.mark.slow
async def test_a_revocation_another_instance_consumed_is_refused_here(
    suite: Suite, identity_client: IdentityClient, audit_client: AuditClient
) -> None:
    """A second audit instance's feed joins the group and takes some of identity.events'
    partitions; a revocation it alone consumes is refused by this instance's query API."""
    async with Database(DatabaseConfig(url=suite.urls["audit"])) as database:
        store = CountingStore(database)
        broker = KafkaBroker(suite.kafka.bootstrap_servers)
        config = suite.audit.settings.kafka
        subscriber = register_revocation_feed(broker, config, store, group_id=REVOCATIONS_GROUP_ID)
        await broker.start()
        try:
            owned = await _owned_partitions(subscriber)
            for _ in range(12):
                staff_id, username, password = await new_staff(suite, Role.PRIVACY_OFFICER)
                _, _, session = await identity_client.staff_login(username, password, source="i2")
                await staff_admin(suite).deactivate(username)
                if await _revoked_on(suite, staff_id) in owned:
                    break
            else:
                pytest.fail("no revocation landed on the second instance's partitions")
            await refused_after(audit_client, session.token, str(uuid.uuid4()))
            assert staff_id in store.recorded, "the second instance consumed it"
        finally:
            await broker.stop()


async def test_a_token_is_refused_when_its_revocations_cannot_be_read(suite: Suite) -> None:
    """Fail closed: with audit's database unreachable, a valid token is answered `unavailable`."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/moment_audit"
    async with Database(DatabaseConfig(url=url, connect_timeout_s=2)) as unreachable:
        store = SqlRevocationStore(lambda: SqlUnitOfWork(unreachable), revocations)
        verifier = LazyVerifier(suite.audit.vault, store)
        token = (await TokenSigner(suite.identity.vault).issue(Principal.customer("s-1"))).token
        with pytest.raises(DatabaseUnavailable) as caught:
            await verifier.principal(token)
    reply = to_error_reply(caught.value)
    assert reply is not None
    assert reply.code == ErrorCode.UNAVAILABLE
