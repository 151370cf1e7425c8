"""The transactional outbox when the broker goes away: writes still commit, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr
from sqlalchemy import MetaData, func, select

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.topics import TopicSpec
from moment_devstack.processes import free_port, tansu
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_messaging.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from moment_messaging.producer import OutgoingRecord, PublishError, ResilientProducer
from moment_messaging.tables import define_messaging_tables
from moment_persistence.config import DatabaseConfig
from moment_persistence.database import Database
from tests.support.kafka import read_topic
from tests.support.netfault import TcpProxy
from tests.support.postgres import PostgresDatabases
from tests.support.waiting import DEADLINE_S

TOPIC = "outage.events"


class Happened(Contract):
    ce_type: ClassVar[str] = "moment.test.happened.v1"
    n: int


@pytest.fixture
async def outage_db(postgres_database_factory: PostgresDatabases) -> AsyncIterator[Database]:
    url = await postgres_database_factory.create("outbox")
    database = Database(DatabaseConfig(url=SecretStr(url)))
    async with database.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield database
    await database.dispose()


METADATA = MetaData()
TABLES = define_messaging_tables(METADATA)


async def write(database: Database, numbers: range) -> None:
    for n in numbers:
        envelope = Envelope.of(Happened(n=n), source="/test", subject=f"subject-{n % 4}")
        async with database.sessionmaker() as session, session.begin():
            await add_to_outbox(session, TABLES, [OutboxMessage(TOPIC, envelope)])


async def unpublished(database: Database) -> int:
    async with database.sessionmaker() as session:
        query = select(func.count()).where(TABLES.outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def wait_until(predicate, timeout_s: float = DEADLINE_S) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_events_written_while_the_broker_is_unreachable_are_all_delivered_once_it_is_back(
    outage_db: Database, tmp_path: Path
) -> None:
    """The broker keeps running, but clients can't reach it (a network cut, via a proxy)."""
    proxy_port = free_port()
    broker = tansu(tmp_path, advertised_port=proxy_port)
    broker.start()
    proxy = TcpProxy(proxy_port, broker.port)
    await proxy.start()
    config = KafkaConfig(
        bootstrap_servers=f"127.0.0.1:{proxy_port}",
        request_timeout_ms=1500,
        outbox_poll_interval_ms=50,
        outbox_max_backoff_ms=400,
    )
    await ensure_topics(config, [TopicSpec(TOPIC, partitions=2)])
    relay = OutboxRelay(outage_db.sessionmaker, TABLES, ResilientProducer(config), config)
    relay.start()
    try:
        await write(outage_db, range(5))
        await wait_until(lambda: _zero(outage_db))
        await proxy.cut()

        await write(outage_db, range(5, 25))  # commits although no broker answers
        assert await unpublished(outage_db) == 20
        await asyncio.sleep(2.0)
        assert await unpublished(outage_db) == 20, "nothing may be marked sent without an ack"

        await proxy.start()
        await wait_until(lambda: _zero(outage_db))
        records = await read_topic(config.bootstrap_servers, TOPIC, expect=25)
        delivered = sorted(Happened.model_validate_json(r.value).n for r in records)
        assert set(delivered) == set(range(25)), "every event arrives"
        assert all(r.key is not None and r.key.startswith(b"subject-") for r in records)
    finally:
        await relay.stop()
        await proxy.cut()
        broker.stop()


async def test_a_restarted_broker_gets_its_topics_back_before_the_relay_publishes(
    outage_db: Database, tmp_path: Path
) -> None:
    """Tansu forgets everything on restart; the relay's connect hook recreates the topics."""
    broker = tansu(tmp_path)
    broker.start()
    config = KafkaConfig(bootstrap_servers=f"127.0.0.1:{broker.port}", request_timeout_ms=1500)
    created: list[int] = []

    async def recreate_topics() -> None:
        await ensure_topics(config, [TopicSpec(TOPIC, partitions=2)], attempts=1)
        created.append(1)

    producer = ResilientProducer(config, on_connect=recreate_topics)
    relay = OutboxRelay(outage_db.sessionmaker, TABLES, producer, config)
    try:
        await write(outage_db, range(3))
        assert await relay.publish_pending() == 3
        broker.stop()
        await write(outage_db, range(3, 6))
        with pytest.raises(PublishError):
            await relay.publish_pending()
        broker = tansu(tmp_path, port=broker.port)
        broker.start()
        assert await relay.publish_pending() == 3
        records = await read_topic(config.bootstrap_servers, TOPIC, expect=3)
        assert sorted(Happened.model_validate_json(r.value).n for r in records) == [3, 4, 5]
        assert len(created) == 2
    finally:
        await relay.stop()
        broker.stop()


async def _zero(database: Database) -> bool:
    return await unpublished(database) == 0


async def test_transactions_are_an_option_that_tansu_refuses_clearly(
    kafka_config: KafkaConfig,
) -> None:
    """Real Kafka gets atomic batches with `transactional`; Tansu has no InitProducerId."""
    config = kafka_config.model_copy(update={"transactional": True, "request_timeout_ms": 2000})
    producer = ResilientProducer(config)
    try:
        with pytest.raises(PublishError):
            await asyncio.wait_for(
                producer.send_all([OutgoingRecord(TOPIC, b"{}", None, [])]), timeout=30
            )
    finally:
        await producer.stop()
