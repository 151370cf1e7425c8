"""Read every checkpoint ever published on `audit.checkpoints`, from the beginning to the end.

By manual assignment: no consumer group to join (slow on Tansu) and no offsets committed, so any
number of readers can run at once and nothing they do moves the service. Tansu can report an end
offset short of the records it then hands over, so the reader does not stop at the end offsets
alone: it stops once it is past them and a whole settling interval brought nothing new.

Anyone who can write to the topic can put anything there. A record that is not a CloudEvent, has
an unexpected type, or does not parse as a CheckpointSigned is a warning and is skipped; nothing
read here is trusted before its signature is checked (service/witness.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.witness_file import from_line
from moment_audit.domain.checkpoints import Checkpoint
from moment_client import fetching
from moment_contracts import topics
from moment_contracts.audit_chain import CheckpointSigned, RetentionApplied
from moment_contracts.envelope import from_kafka
from moment_messaging.config import KafkaConfig

# Past the end offsets, this long without a record means the end was reached.
SETTLE_S = 1.0
READ_TIMEOUT_S = 120.0
FETCH_RECORDS = 500


class StreamUnavailable(Exception):
    """The stream could not be read to its end: the broker, or a missing topic."""


@dataclass
class StreamRead:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    horizons: int = 0
    records: int = 0


def judge_record(record: ConsumerRecord[Any, Any], limit: int, read: StreamRead) -> None:
    """Take one record: a checkpoint, a skipped retention event, or a warning."""
    read.records += 1
    where = f"{record.topic} partition {record.partition} offset {record.offset}"
    problem = getattr(record, "problem", None)
    value = record.value
    if problem is not None or not isinstance(value, bytes):
        read.warnings.append(f"{where}: unreadable ({problem or 'no body'}), skipped")
        return
    if len(value) > limit:
        read.warnings.append(f"{where}: {len(value)} bytes, over the limit, skipped")
        return
    try:
        kind = from_kafka(record.headers, value).type
    except Exception as exc:  # noqa: BLE001 - whatever an attacker put in the headers
        read.warnings.append(f"{where}: not a CloudEvent ({type(exc).__name__}), skipped")
        return
    if kind == RetentionApplied.ce_type:
        read.horizons += 1
        return
    if kind != CheckpointSigned.ce_type:
        read.warnings.append(f"{where}: unexpected type, skipped")
        return
    try:
        read.checkpoints.append(from_line(value.decode("utf-8")))
    except (UnicodeDecodeError, ValueError) as exc:
        read.warnings.append(f"{where}: {exc}, skipped")


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # Metadata requests for every topic name none, so they cannot auto-create this one.
    if topic not in await consumer.topics():
        raise StreamUnavailable(f"topic {topic} does not exist")
    for _ in range(50):
        ids = consumer.partitions_for_topic(topic)
        if ids:
            return [TopicPartition(topic, p) for p in sorted(ids)]
        await consumer._client.force_metadata_update()  # aiokafka has no public refresh
        await asyncio.sleep(0.05)
    raise StreamUnavailable(f"no partitions of {topic} in the cluster's metadata")


async def _past_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


async def _read_all(consumer: AIOKafkaConsumer, topic: str, limit: int) -> StreamRead:
    partitions = await _partitions(consumer, topic)
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    read = StreamRead()
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while True:
        batch = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
        records = [r for tp in sorted(batch) for r in batch[tp]]
        for record in records:
            judge_record(record, limit, read)
        if records:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= SETTLE_S and await _past_end(consumer, partitions):
            return read


async def read_checkpoint_stream(
    config: KafkaConfig, *, topic: str = topics.AUDIT_CHECKPOINTS, timeout_s: float = READ_TIMEOUT_S
) -> StreamRead:
    """Every CheckpointSigned on the topic (RetentionApplied counted and skipped), with a
    warning per record that is not one."""
    fetching.install()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        client_id=f"{config.client_id}-witness",
        enable_auto_commit=False,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        request_timeout_ms=config.request_timeout_ms,
    )
    try:
        await consumer.start()
    except (KafkaError, OSError) as exc:
        raise StreamUnavailable(f"Kafka is not reachable ({type(exc).__name__})") from None
    try:
        return await asyncio.wait_for(
            _read_all(consumer, topic, config.max_message_bytes), timeout_s
        )
    except TimeoutError:
        raise StreamUnavailable(f"{topic} was not read to its end in {timeout_s:.0f} s") from None
    except KafkaError as exc:
        raise StreamUnavailable(f"{topic} could not be read ({type(exc).__name__})") from None
    finally:
        await consumer.stop()
