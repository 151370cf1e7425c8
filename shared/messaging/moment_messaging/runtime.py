"""Building FastStream brokers and subscribers the same way in every service.

Handlers stay thin (qserv-kafka style): a subscriber per topic, one typed handler per message type
selected by its `ce_type` header, so the AsyncAPI document lists every accepted message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber, DefaultSubscriber
from faststream.middlewares import AckPolicy
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from moment_client import fetching
from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope, from_kafka
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import DeadLetterPolicy, make_parser
from moment_messaging.replies import Replier, ReplyTopics


def build_broker(
    config: KafkaConfig,
    *,
    source: str,
    policy: DeadLetterPolicy,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger: Any = None,
) -> tuple[KafkaBroker, Replier]:
    fetching.install()
    broker = KafkaBroker(
        config.bootstrap_servers,
        client_id=config.client_id,
        acks=config.acks,
        enable_idempotence=config.enable_idempotence,
        request_timeout_ms=config.request_timeout_ms,
        max_request_size=config.max_message_bytes * 4,
        middlewares=(
            KafkaTelemetryMiddleware(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            ),
            policy.middleware(),
        ),
        logger=logger,
    )
    replier = Replier(
        broker, source, ReplyTopics(config.bootstrap_servers, client_id=config.client_id)
    )
    policy.bind(broker, replier)
    return broker, replier


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    accepts: Iterable[type[Contract]],
    config: KafkaConfig,
) -> DefaultSubscriber:
    """A consumer-group subscriber that commits only after processing (or dead-lettering)."""
    return broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
        # More than one worker: one consumer per worker in the group, each owning whole
        # partitions, so order within a partition and commit-after-processing both hold.
        max_workers=config.consumer_workers,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        rebalance_timeout_ms=config.rebalance_timeout_ms,
        max_poll_interval_ms=config.max_poll_interval_ms,
        group_instance_id=group_instance_id(config, group_id, topic),
        max_partition_fetch_bytes=partition_fetch_bytes(config),
        fetch_max_bytes=4 * partition_fetch_bytes(config),
        parser=make_parser(frozenset(m.ce_type for m in accepts), config.max_message_bytes),
    )


def subscribe_batch(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    config: KafkaConfig,
    max_records: int,
    listener: ConsumerRebalanceListener | None = None,
) -> BatchSubscriber:
    """A consumer-group subscriber handed up to `max_records` records per call, whatever has
    arrived, committed only after the handler returns. No parser: the handler checks each record
    (`deadletter.check_envelope`, `validate_body`) and raises `RejectedRecords` for the ones it
    cannot take."""
    return broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        no_reply=True,
        batch=True,
        max_records=max_records,
        listener=listener,
        # How long one poll waits when nothing is buffered: a lone record is not held back.
        batch_timeout_ms=config.fetch_max_wait_ms,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        rebalance_timeout_ms=config.rebalance_timeout_ms,
        max_poll_interval_ms=config.max_poll_interval_ms,
        group_instance_id=group_instance_id(config, group_id, topic),
        max_partition_fetch_bytes=partition_fetch_bytes(config),
        fetch_max_bytes=4 * partition_fetch_bytes(config),
        # FastStream would JSON-decode every body first, and one malformed record would fail
        # the whole batch before the handler could reject that record alone.
        decoder=_raw_bodies,
        parser=_tolerant_batch,
    )


def group_instance_id(config: KafkaConfig, group_id: str, topic: str) -> str | None:
    """With static membership, an instance id unique to this consumer: one process runs
    several, one per subscribed topic, some in the same group."""
    if config.group_instance_id is None:
        return None
    return f"{config.group_instance_id}.{group_id}.{topic}"


def partition_fetch_bytes(config: KafkaConfig) -> int:
    """aiokafka's fetch sizes follow the contract's record size, not its defaults (1 MiB a
    partition, 50 MiB a fetch, four partitions' worth here), so what one consumer buffers stays
    a few MiB whatever arrives. A record larger than this is still returned whole by the broker
    (it must be, for the consumer to make progress), then refused unparsed and dead-lettered as a
    digest (deadletter.dead_letter_record)."""
    return 2 * config.max_message_bytes


async def _tolerant_batch(
    records: tuple[ConsumerRecord[Any, Any], ...], original: Callable[..., Awaitable[Any]]
) -> Any:
    """FastStream decodes every header of every record of a batch as UTF-8: one null or
    non-UTF-8 header value failed the whole poll before the handler ran. Such a poll is parsed
    from readable copies, and the handler still checks (and dead-letters) the originals."""
    try:
        return await original(records)
    except (AttributeError, UnicodeDecodeError):
        message = await original(tuple(_readable(r) for r in records))
        message.raw_message = records
        return message


def _readable(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    headers = [
        (name, (value or b"").decode("utf-8", "replace").encode()) for name, value in record.headers
    ]
    return dataclasses.replace(record, headers=headers)


async def _raw_bodies(message: KafkaMessage, _original: Callable[..., Awaitable[Any]]) -> Any:
    return [record.value for record in records_of(message)]


def records_of(message: KafkaMessage) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The aiokafka records behind a batch subscriber's message."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (cast("ConsumerRecord[Any, Any]", raw),)


def of_type(model: type[Contract]) -> Any:
    """A FastStream filter choosing the handler by the CloudEvents type header."""

    def matches(message: KafkaMessage) -> bool:
        return bool(message.headers.get("ce_type") == model.ce_type)

    return matches


def record_of(message: KafkaMessage) -> ConsumerRecord[Any, Any]:
    """The aiokafka record behind a single (non-batch) message."""
    return cast("ConsumerRecord[Any, Any]", message.raw_message)


def envelope_of(message: KafkaMessage) -> Envelope:
    record = record_of(message)
    return from_kafka(record.headers, record.value or b"")
