"""Replies go only to reply topics that exist: a forged `reply_to` creates no topic (Tansu creates
one on a metadata request that allows it, which aiokafka's producer sends before a first send)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.metadata import MetadataRequest

from moment_client.admin import create_topics
from moment_contracts import topics
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope
from moment_contracts.identity import GetSealingKey, SealingKey
from moment_contracts.topics import TopicSpec, reply_topic
from moment_devstack.processes import ManagedProcess
from moment_messaging.replies import MISSING_TTL_S, ReplyTopics
from tests.support.kafka import header, read_topic
from tests.support.produce import publish
from tests.support.suite import Suite


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def sealing_key_request(reply_to: str, key: str) -> Envelope:
    return Envelope.of(
        GetSealingKey(),
        source="/test/attacker",
        subject=key,
        extra={REPLY_TO: reply_to, CORRELATION_ID: str(uuid.uuid4())},
    )


async def test_a_reply_to_a_missing_reply_topic_creates_nothing(suite: Suite) -> None:
    bootstrap = suite.kafka.bootstrap_servers
    real = reply_topic(uuid.uuid4().hex)
    await create_topics(bootstrap, [TopicSpec(real, partitions=1)])
    missing = [reply_topic(uuid.uuid4().hex), "replies.a", f"{topics.AUDIT_EVENTS}.forged"]
    # One key: one partition, so the service has handled the forged requests once it has
    # answered the last one.
    pin = str(uuid.uuid4())
    forged = [sealing_key_request(name, pin) for name in missing]
    answered = sealing_key_request(real, pin)
    await publish(bootstrap, topics.IDENTITY_COMMANDS, *forged, answered)

    wanted = answered.extra[CORRELATION_ID]
    replies = await read_topic(
        bootstrap, real, timeout_s=60, where=lambda r: header(r, CORRELATION_ID) == wanted
    )
    assert [header(r, "ce_type") for r in replies] == [SealingKey.ce_type]
    assert not set(missing) & await topic_names(bootstrap)


async def test_reply_topics_are_looked_up_without_creating_them(
    kafka_broker: ManagedProcess,
) -> None:
    bootstrap = f"127.0.0.1:{kafka_broker.port}"
    lookup = ReplyTopics(bootstrap)
    name = reply_topic(uuid.uuid4().hex)
    try:
        assert not await lookup.exists(name)
        assert not await lookup.exists(name), "asked twice"
        assert name not in await topic_names(bootstrap)
        # Created after a miss (a client that just started): found once the miss expires.
        await create_topics(bootstrap, [TopicSpec(name, partitions=1)])
        found = False
        deadline = asyncio.get_running_loop().time() + 30 + MISSING_TTL_S
        while not found and asyncio.get_running_loop().time() < deadline:
            found = await lookup.exists(name)
            await asyncio.sleep(0.1)
        assert found
    finally:
        await lookup.close()


async def test_tansu_creates_topics_on_metadata_requests_that_allow_it(
    kafka_broker: ManagedProcess,
) -> None:
    """The premise of ReplyTopics: a metadata request allowing auto-creation (aiokafka's
    producer sends one before its first send to a topic) creates the topic; one that doesn't
    allow it creates nothing."""
    bootstrap = f"127.0.0.1:{kafka_broker.port}"
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    allowed, refused = reply_topic(uuid.uuid4().hex), reply_topic(uuid.uuid4().hex)
    try:
        for name, allow in ((refused, False), (allowed, True)):
            request = MetadataRequest([name], allow_auto_topic_creation=allow)
            await client.send(client.get_random_node(), request)
    finally:
        await client.close()
    names = await topic_names(bootstrap)
    assert allowed in names
    assert refused not in names
