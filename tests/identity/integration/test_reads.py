"""Reading personal data: own data, staff by role and purpose, denials audited, audit first."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from moment_auth.principals import Principal, Role
from moment_auth.tokens import TokenSigner
from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.errors import ErrorCode
from moment_devstack.processes import free_port, tansu
from moment_identity.adapters.audit_emitter import BrokerAckAudit
from moment_identity.adapters.orm import staff_accounts, users
from moment_identity.service.unit_of_work import SOURCE
from moment_messaging.producer import ResilientProducer
from tests.identity.integration.test_audit_sequence import last_taken, seq_of
from tests.identity.integration.test_login import PASSWORD, register
from tests.support.audit_store import of, stored_audit
from tests.support.kafka import header, read_all, read_topic, record_bytes
from tests.support.netfault import TcpProxy
from tests.support.produce import resend_raw
from tests.support.suite import Suite


async def customer_token(client: IdentityClient, tag: str) -> str:
    _, session = await client.login(f"user_{tag}", PASSWORD, source="reads-test")
    return session.token


async def staff_token(suite: Suite, *roles: Role) -> str:
    """A staff member as the staff issue will create them: a row, then a signed token."""
    staff_id = f"staff-{uuid.uuid4().hex[:8]}"
    async with suite.identity.core.database.sessionmaker() as session, session.begin():
        await session.execute(
            insert(staff_accounts).values(
                staff_id=staff_id,
                username_index=f"test:{staff_id}",
                password_hash="unused",
                roles=[str(r) for r in roles],
                created_at=datetime.now(UTC),
            )
        )
    signer = TokenSigner(suite.identity.vault)
    return (await signer.issue(Principal.staff(staff_id, roles))).token


async def audit_rows(suite: Suite, subject_id: str, expect: int) -> list[dict[str, object]]:
    return await stored_audit(suite, *of(subject_id, "read"), expect=expect)


async def test_a_customer_reads_their_own_data(identity_client: IdentityClient) -> None:
    subject_id, tag = await register(identity_client, name="ليلى أحمد")
    token = await customer_token(identity_client, tag)
    values = await identity_client.read(token, subject_id, ["name", "email", "age"])
    assert values == {"name": "ليلى أحمد", "email": f"{tag}@example.test", "age": "30"}


async def test_a_customer_cannot_read_another(identity_client: IdentityClient) -> None:
    victim, _ = await register(identity_client)
    _, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    with pytest.raises(ServiceError) as caught:
        await identity_client.read(token, victim, ["email"])
    assert caught.value.code == ErrorCode.ACCESS_DENIED


async def test_an_operator_reads_contact_fields_for_a_purpose_and_is_audited(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await staff_token(suite, Role.SUPPORT_OPERATOR)
    values = await identity_client.read(token, subject_id, ["email"], purpose="user-dealings")
    assert values == {"email": f"{tag}@example.test"}
    with pytest.raises(ServiceError) as no_purpose:
        await identity_client.read(token, subject_id, ["email"])
    with pytest.raises(ServiceError) as beyond_role:
        await identity_client.read(
            token, subject_id, ["recovery_question"], purpose="user-dealings"
        )
    assert no_purpose.value.code == beyond_role.value.code == ErrorCode.ACCESS_DENIED
    rows = await audit_rows(suite, subject_id, expect=3)
    assert sorted(r["outcome"] for r in rows) == ["denied", "denied", "success"]
    success = next(r for r in rows if r["outcome"] == "success")
    assert (success["purpose"], success["actor_role"], success["fields"]) == (
        "user-dealings",
        "support-operator",
        ["email"],
    )


async def test_invalid_or_revoked_credentials_are_refused(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    with pytest.raises(ServiceError) as forged:
        await identity_client.read(token[:-4] + "AAAA", subject_id, ["name"])
    assert forged.value.code == ErrorCode.UNAUTHORISED
    async with suite.identity.core.database.sessionmaker() as session, session.begin():
        await session.execute(
            users.update().where(users.c.subject_id == subject_id).values(session_version=1)
        )
    with pytest.raises(ServiceError) as revoked:
        await identity_client.read(token, subject_id, ["name"])
    assert revoked.value.code == ErrorCode.UNAUTHORISED


async def test_values_never_cross_kafka_in_clear(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client, name="Canary Reader 9c1")
    token = await customer_token(identity_client, tag)
    await identity_client.read(token, subject_id, ["name", "email"])
    for topic in (topics.IDENTITY_COMMANDS, topics.AUDIT_EVENTS, topics.IDENTITY_EVENTS):
        records = await read_all(suite.kafka.bootstrap_servers, topic)
        blob = b"".join(record_bytes(r) for r in records)
        assert b"Canary Reader 9c1" not in blob
        assert f"{tag}@example.test".encode() not in blob
        assert token.encode() not in blob, "bearer tokens travel sealed"


@contextlib.asynccontextmanager
async def broker_ack_audit(suite: Suite, bootstrap: str) -> AsyncIterator[None]:
    """Identity's reads switched to broker-ack audit mode, publishing through `bootstrap`."""
    config = suite.kafka.model_copy(
        update={"bootstrap_servers": bootstrap, "request_timeout_ms": 1500}
    )
    producer = ResilientProducer(config, "audit-test")
    deps = suite.identity.handlers().read_deps
    original = deps.audit
    object.__setattr__(deps, "audit", BrokerAckAudit(producer))
    try:
        yield
    finally:
        object.__setattr__(deps, "audit", original)
        await producer.stop()


async def test_broker_ack_mode_releases_data_after_the_audit_is_acknowledged(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subject_id, tag = await register(identity_client)
    token = await customer_token(identity_client, tag)
    async with broker_ack_audit(suite, suite.kafka.bootstrap_servers):
        values = await identity_client.read(token, subject_id, ["username"])
    assert values == {"username": f"user_{tag}"}
    assert [r["outcome"] for r in await audit_rows(suite, subject_id, expect=1)] == ["success"]


async def test_a_read_fails_closed_when_the_audit_cannot_be_recorded(
    suite: Suite, identity_client: IdentityClient
) -> None:
    """The audit broker is gone: no values are released, and the caller gets a clear error."""
    subject_id, tag = await register(identity_client, name="Fail Closed Canary")
    token = await customer_token(identity_client, tag)
    async with broker_ack_audit(suite, f"127.0.0.1:{free_port()}"):
        with pytest.raises(ServiceError) as caught:
            await identity_client.read(token, subject_id, ["name"])
    assert caught.value.code == ErrorCode.AUDIT_UNAVAILABLE
    assert caught.value.reply.retryable
    assert "Fail Closed Canary" not in caught.value.reply.model_dump_json()


async def hand_over_audit(suite: Suite, stand_in: str, expect: int) -> None:
    """Move what a stand-in audit broker acknowledged onto the suite's audit.events, byte for byte.

    Identity numbered those events on the suite's one producer counter, so left behind on a broker
    that is then thrown away they are a hole in the sequence audit watches (and that
    test_audit_sequence checks) for every later test of the session."""
    records = await read_topic(stand_in, topics.AUDIT_EVENTS, expect=expect, timeout_s=30)
    assert len(records) == expect, "the acknowledged audit event is on the broker"
    for record in records:
        await resend_raw(suite.kafka.bootstrap_servers, record)


async def numbered_since(suite: Suite, taken: int) -> list[int]:
    """The sequence numbers past `taken` on the suite's audit.events: a refused read's event
    never reached a broker, so its number must not stay committed (only the refusal's own
    record, sent through the outbox, takes one)."""
    expect = await last_taken(suite) - taken
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_EVENTS,
        expect=expect,
        timeout_s=30,
        where=lambda r: header(r, "ce_source") == SOURCE and (seq_of(r) or 0) > taken,
    )
    return sorted(seq_of(r) or 0 for r in records)


async def test_taking_the_broker_away_mid_stream_fails_the_read_closed(
    suite: Suite, identity_client: IdentityClient, tmp_path: Path
) -> None:
    """Broker-ack mode against a broker reached through a proxy: it works, then the proxy is cut
    while the producer is connected, and the next read is refused rather than left unaudited,
    without spending a sequence number on the event that never reached the broker."""
    proxy_port = free_port()
    audit_broker = tansu(tmp_path, advertised_port=proxy_port)
    audit_broker.start()
    proxy = TcpProxy(proxy_port, audit_broker.port)
    await proxy.start()
    subject_id, tag = await register(identity_client, name="Mid Stream Canary")
    token = await customer_token(identity_client, tag)
    try:
        async with broker_ack_audit(suite, f"127.0.0.1:{proxy_port}"):
            assert await identity_client.read(token, subject_id, ["name"]) == {
                "name": "Mid Stream Canary"
            }
            await hand_over_audit(suite, f"127.0.0.1:{proxy_port}", expect=1)
            taken = await last_taken(suite)
            await proxy.cut()
            with pytest.raises(ServiceError) as caught:
                await identity_client.read(token, subject_id, ["name"])
    finally:
        await proxy.cut()
        audit_broker.stop()
    assert caught.value.code == ErrorCode.AUDIT_UNAVAILABLE
    assert "Mid Stream Canary" not in caught.value.reply.model_dump_json()
    committed = list(range(taken + 1, await last_taken(suite) + 1))
    assert await numbered_since(suite, taken) == committed, "every committed number has its event"
