"""Poison messages of every kind land on the DLQ with their reason, and the consumer carries on."""

from __future__ import annotations

import uuid
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.topics import TopicSpec, dlq
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import DeadLetterPolicy
from moment_messaging.runtime import build_broker, envelope_of, of_type, subscribe
from moment_telemetry.metrics import Metrics
from tests.support.kafka import header, read_topic
from tests.support.waiting import eventually


class Ping(Contract):
    ce_type: ClassVar[str] = "moment.test.ping.v1"
    n: int
    fail: str = "never"


class Other(Contract):
    ce_type: ClassVar[str] = "moment.test.other.v1"


@pytest.fixture
async def ping_app(kafka_config: KafkaConfig):
    topic = f"test.ping.{uuid.uuid4().hex[:8]}"
    config = kafka_config.model_copy(update={"max_message_bytes": 2048, "retry_backoff_ms": 10})
    await ensure_topics(config, [TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), 1)])
    reader = InMemoryMetricReader()
    policy = DeadLetterPolicy(
        config, consumer="ping-test", metrics=Metrics(MeterProvider(metric_readers=[reader]))
    )
    broker, _ = build_broker(config, source="/test", policy=policy)
    seen: list[int] = []
    attempts: dict[int, int] = {}
    sub = subscribe(broker, topic, group_id=f"g-{topic}", accepts=[Ping], config=config)

    @sub(filter=of_type(Ping))
    async def on_ping(body: Ping, msg: KafkaMessage) -> None:
        attempts[body.n] = attempts.get(body.n, 0) + 1
        assert envelope_of(msg).type == Ping.ce_type
        if body.fail == "always" or (body.fail == "once" and attempts[body.n] == 1):
            raise RuntimeError("boom")
        seen.append(body.n)

    await broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap_servers)
    await producer.start()
    yield topic, producer, seen, attempts, config, reader
    await producer.stop()
    await broker.stop()


def _good(n: int, **kw: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    env = Envelope.of(Ping(n=n, **kw), source="/test")
    return env.data, env.headers()


async def test_every_poison_kind_is_dead_lettered_and_consumer_goes_on(ping_app) -> None:
    topic, producer, seen, attempts, config, reader = ping_app
    _, good_headers = _good(0)
    other = Envelope.of(Other(), source="/test")
    poison = {
        "malformed": (b"{not json", good_headers),
        "schema-violation": (b'{"n": "not a number"}', good_headers),
        "unknown-type": (other.data, other.headers()),
        "oversized": (b'{"n": 1, "fail": "' + b"x" * 4096 + b'"}', good_headers),
        "handler-error": _good(7, fail="always"),
    }
    for value, headers in poison.values():
        await producer.send_and_wait(topic, value, headers=headers)
    await producer.send_and_wait(
        topic, b'{"n": 1}', headers=[("content-type", b"application/json")]
    )
    value, headers = _good(42)
    await producer.send_and_wait(topic, value, headers=headers)

    dead = await read_topic(config.bootstrap_servers, dlq(topic), expect=6)
    reasons = [header(r, "dlq_reason") for r in dead]
    assert sorted(reasons) == sorted([*poison.keys(), "malformed"])
    for record in dead:
        assert header(record, "dlq_original_topic") == topic
        assert header(record, "dlq_consumer") == "ping-test"
    handler_error = next(r for r in dead if header(r, "dlq_reason") == "handler-error")
    assert header(handler_error, "ce_type") == Ping.ce_type, "original headers are kept"
    assert attempts[7] == config.handler_retries + 1
    await eventually(lambda: _now(42 in seen), what="the good record handled")
    assert seen == [42]
    assert _dead_letter_counts(reader) == {r: reasons.count(r) for r in reasons}


async def _now(value: bool) -> bool:
    return value


def _dead_letter_counts(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    counts: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "moment.messages.dead_lettered":
                    for point in metric.data.data_points:
                        counts[str(point.attributes["reason"])] = int(point.value)
    return counts


async def test_transient_handler_error_is_retried_not_dead_lettered(ping_app) -> None:
    topic, producer, seen, attempts, config, _ = ping_app
    value, headers = _good(5, fail="once")
    await producer.send_and_wait(topic, value, headers=headers)
    await eventually(lambda: _now(bool(seen)), what="the record handled")
    assert seen == [5]
    assert attempts[5] == 2
    # The handler succeeded on its retry, so nothing can be dead-lettered for it: this read only
    # confirms the topic holds nothing, it needs no settle period.
    assert await read_topic(config.bootstrap_servers, dlq(topic), expect=1, timeout_s=1) == []
