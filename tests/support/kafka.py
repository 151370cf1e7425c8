"""A real Tansu broker for the test session, and helpers to read what landed on a topic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from moment_contracts.topics import CORE_TOPICS
from moment_devstack.processes import ManagedProcess, tansu
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from tests.support.waiting import DEADLINE_S


@pytest.fixture(scope="session")
def kafka_broker(run_dir: Path) -> Iterator[ManagedProcess]:
    broker = tansu(run_dir)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[ManagedProcess]:
    """A Tansu of the test's own, for a service that must not share consumer group "audit" (or
    any other) with the session's in-process suite."""
    broker = tansu(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_config(kafka_broker: ManagedProcess) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=f"127.0.0.1:{kafka_broker.port}", handler_retries=2)


@pytest.fixture(scope="session")
async def kafka_topics(kafka_config: KafkaConfig) -> KafkaConfig:
    await ensure_topics(kafka_config, CORE_TOPICS)
    return kafka_config


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int = 1,
    timeout_s: float = DEADLINE_S,
    where: object = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` from the beginning, once at least `expect` (matching `where`)
    arrived; what there is after `timeout_s` otherwise (an absence check passes its settle
    period, see support/waiting.py).

    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            found.extend(r for records in batch.values() for r in records)
            matching = [r for r in found if where is None or where(r)]  # type: ignore[operator]
            if len(matching) >= expect:
                return matching
        return [r for r in found if where is None or where(r)]  # type: ignore[operator]
    finally:
        await consumer.stop()


async def read_all(
    bootstrap: str, topic: str, *, timeout_s: float = DEADLINE_S
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` up to the end offsets it has when called: for scans of what is
    there, however slow the machine (a read for a fixed time may return before the first fetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [p for p, end in ends.items() if await consumer.position(p) < end]:
            assert asyncio.get_running_loop().time() < deadline, f"{topic} not read to its end"
            batch = await consumer.getmany(timeout_ms=100)
            found.extend(r for records in batch.values() for r in records)
        return found
    finally:
        await consumer.stop()


async def committed_past(
    bootstrap: str, group: str, sent: list[RecordMetadata], *, timeout_s: float = DEADLINE_S
) -> None:
    """Until consumer group `group` has committed past every record in `sent`: it has handled
    them all (the services commit after processing), so their effects, or their absence, are
    final without a settle period."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        wanted: dict[TopicPartition, int] = {}
        for meta in sent:
            tp = TopicPartition(meta.topic, meta.partition)
            wanted[tp] = max(wanted.get(tp, 0), meta.offset + 1)
        deadline = asyncio.get_running_loop().time() + timeout_s
        for tp, offset in wanted.items():
            while (await consumer.committed(tp) or 0) < offset:
                assert asyncio.get_running_loop().time() < deadline, f"{group} never got past"
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        ids = consumer.partitions_for_topic(topic)
        if ids:
            return [TopicPartition(topic, p) for p in sorted(ids)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.05)
    raise AssertionError(f"topic {topic} does not exist")


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    """The header's value as text; None when absent or null (poison tests leave such records on
    the shared topics)."""
    for key, value in record.headers:
        if key == name:
            return None if value is None else value.decode("utf-8", "replace")
    return None


def record_bytes(record: ConsumerRecord[bytes, bytes]) -> bytes:
    """Everything a record carries, for scanning it for planted values: key, value, and every
    header's name and value (a null value counts as empty)."""
    headers = b"".join(
        (name.encode() if isinstance(name, str) else bytes(name)) + (value or b"")
        for name, value in record.headers
    )
    return (record.key or b"") + (record.value or b"") + headers
