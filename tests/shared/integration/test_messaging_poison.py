"""Poison a consumer as an attacker with write access to its topic would: records far over the
contract's size, header names that are not UTF-8, headers without values, bodies nested past any
parser's depth. Each goes to the DLQ alone with its reason, the good record behind it is
processed, and the consumer's memory stays bounded."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import psutil
import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaMessage
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from moment_contracts.base import Contract
from moment_contracts.envelope import Envelope
from moment_contracts.registry import DecodeError
from moment_contracts.topics import TopicSpec, dlq
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import (
    DLQ_PREFIX_BYTES,
    DeadLetterPolicy,
    RejectedRecords,
    check_envelope,
    validate_body,
)
from moment_messaging.runtime import (
    build_broker,
    envelope_of,
    of_type,
    record_of,
    records_of,
    subscribe,
    subscribe_batch,
)
from tests.shared.unit.test_messaging_poison import records
from tests.support.kafka import header, read_topic
from tests.support.produce import RawHeaders, RawName, publish_raw

MiB = 1024 * 1024


class Ping(Contract):
    ce_type: ClassVar[str] = "moment.test.ping.v1"
    n: int


@dataclass
class App:
    topic: str
    config: KafkaConfig
    seen: list[int] = field(default_factory=list)

    async def send(self, *records: tuple[bytes | None, bytes | None, RawHeaders]) -> None:
        await publish_raw(self.config.bootstrap_servers, self.topic, *records)

    async def dead_letters(self, expect: int) -> list[ConsumerRecord[bytes, bytes]]:
        return await read_topic(
            self.config.bootstrap_servers, dlq(self.topic), expect=expect, timeout_s=60
        )

    async def processed(self, n: int, timeout_s: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while n not in self.seen:
            assert asyncio.get_running_loop().time() < deadline, f"record {n} not processed"
            await asyncio.sleep(0.05)


def good(n: int) -> tuple[bytes, bytes, RawHeaders]:
    envelope = Envelope.of(Ping(n=n), source="/test", subject=f"s-{n}")
    return envelope.data, envelope.key or b"", list(envelope.headers())


def with_headers(
    n: int, change: Callable[[RawHeaders], RawHeaders]
) -> tuple[bytes, bytes, RawHeaders]:
    value, key, headers = good(n)
    return value, key, change(headers)


@pytest.fixture
async def app(kafka_config: KafkaConfig) -> AsyncIterator[App]:
    topic = f"test.poison.{uuid.uuid4().hex[:8]}"
    config = kafka_config.model_copy(update={"retry_backoff_ms": 10})
    await ensure_topics(config, [TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), 1)])
    policy = DeadLetterPolicy(config, consumer="poison-test")
    # A real tracer: FastStream's telemetry middleware reads every record's trace headers.
    broker, _ = build_broker(
        config, source="/test", policy=policy, tracer_provider=TracerProvider()
    )
    state = App(topic, config)
    sub = subscribe(broker, topic, group_id=f"g-{topic}", accepts=[Ping], config=config)

    @sub(filter=of_type(Ping))
    async def on_ping(body: Ping, msg: KafkaMessage) -> None:
        assert envelope_of(msg).type == Ping.ce_type
        state.seen.append(body.n)

    await broker.start()
    yield state
    await broker.stop()


def _reasons(dead: list[ConsumerRecord[bytes, bytes]]) -> list[tuple[str | None, str | None]]:
    return [(header(r, "dlq_reason"), header(r, "dlq_original_offset")) for r in dead]


async def test_oversized_records_are_refused_unparsed_and_dead_lettered_as_a_digest(
    app: App,
) -> None:
    big = b'{"n": 1, "pad": "' + b"x" * (5 * MiB) + b'"}'
    _, key, headers = good(1)
    await app.send((big[: 2 * MiB], key, headers), good(2), (big, key, headers), good(3))
    await app.processed(3)
    dead = await app.dead_letters(expect=2)
    assert _reasons(dead) == [("oversized", "0"), ("oversized", "2")]
    for record in dead:
        sent_at = int(header(record, "dlq_original_timestamp") or 0) / 1000
        failed_at = datetime.fromisoformat(header(record, "dlq_failed_at") or "").timestamp()
        # Within a second on a quiet machine; generous here, where the machine is shared.
        assert failed_at - sent_at < 10, "refused at once, not after redeliveries"
    assert app.seen == [2, 3], "each poison dead-lettered alone, the good records processed"
    for record, original in zip(dead, (big[: 2 * MiB], big), strict=True):
        assert len(record.value) == DLQ_PREFIX_BYTES
        assert original.startswith(record.value)
        assert header(record, "dlq_original_size") == str(len(original))
        assert header(record, "dlq_original_sha256") == hashlib.sha256(original).hexdigest()
        assert header(record, "dlq_truncated") == "true"
        assert header(record, "dlq_original_topic") == app.topic


async def test_unreadable_header_names_and_valueless_headers_are_dead_lettered(app: App) -> None:
    not_utf8 = RawName(b"x-\xff\xfe")
    await app.send(
        with_headers(1, lambda h: [*h, (not_utf8, b"v")]),
        good(2),
        with_headers(3, lambda h: [*h, ("x-empty", None)]),
        good(4),
        with_headers(5, lambda h: [(n, None if n == "ce_type" else v) for n, v in h]),
        good(6),
    )
    await app.processed(6)
    dead = await app.dead_letters(expect=3)
    assert _reasons(dead) == [("malformed", "0"), ("malformed", "2"), ("malformed", "4")]
    assert app.seen == [2, 4, 6]
    details = [header(r, "dlq_detail") for r in dead]
    assert details[0] == "a header name is not UTF-8"
    assert details[1] == "header 'x-empty' has no value"
    assert details[2] == "header 'ce_type' has no value"


async def test_a_body_nested_past_any_parser_is_malformed_not_internal(app: App) -> None:
    _, key, headers = good(1)
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"n": 1, "x": ' + b'{"a":' * 40_000 + b"1" + b"}" * 40_001
    await app.send((deep, key, headers), good(2), (deep_object, key, headers), good(3))
    await app.processed(3)
    dead = await app.dead_letters(expect=2)
    assert [reason for reason, _ in _reasons(dead)] == ["malformed", "malformed"]
    assert {header(r, "dlq_detail") for r in dead} == {"the body is nested too deeply"}
    assert app.seen == [2, 3]


async def test_memory_stays_bounded_while_oversized_records_arrive(app: App) -> None:
    process = psutil.Process()
    _, key, headers = good(0)
    await app.send(good(0))
    await app.processed(0)
    before = process.memory_info().rss
    peak = before
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    records = 8
    for n in range(1, records + 1):
        await app.send((b"[" + b"1," * (2 * MiB + n) + b"1]", key, headers))
    await app.send(good(99))
    await app.processed(99)
    dead = await app.dead_letters(expect=records)
    sampling = False
    await sampler
    assert len(dead) == records
    growth = (max(peak, process.memory_info().rss) - before) / MiB
    assert growth < 100, f"RSS grew {growth:.0f} MiB for {records} records of 4 MiB"


def _generated(count: int) -> list[tuple[bytes | None, bytes | None, RawHeaders]]:
    """`count` records from the unit fuzz's strategy, some with a header name that is not UTF-8."""
    found: list[tuple[bytes | None, bytes | None, RawHeaders]] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None)
    @given(records(), st.booleans())
    def collect(record: ConsumerRecord[Any, Any], unreadable: bool) -> None:
        headers: RawHeaders = list(record.headers)
        if unreadable:
            headers.append((RawName(b"\xff" + uuid.uuid4().bytes), b"v"))
        found.append((record.value, record.key, headers))

    collect()
    return found


async def test_generated_records_each_dead_lettered_alone_or_processed(
    kafka_config: KafkaConfig,
) -> None:
    topic = f"test.fuzz.{uuid.uuid4().hex[:8]}"
    config = kafka_config.model_copy(update={"max_message_bytes": 4096})
    await ensure_topics(config, [TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), 1)])
    broker, _ = build_broker(
        config, source="/test", policy=DeadLetterPolicy(config, consumer="fuzz-test")
    )
    handled: list[int] = []
    sub = subscribe(broker, topic, group_id=f"g-{topic}", accepts=[Ping], config=config)

    @sub(filter=of_type(Ping))
    async def on_ping(_body: Ping, msg: KafkaMessage) -> None:
        handled.append(record_of(msg).offset)

    fuzzed = _generated(30)
    await broker.start()
    try:
        sent: list[tuple[bytes | None, bytes | None, RawHeaders]] = []
        for record in fuzzed:
            sent += [record, good(len(sent) + 1)]
        await publish_raw(config.bootstrap_servers, topic, *sent)
        good_offsets = set(range(1, len(sent), 2))
        deadline = asyncio.get_running_loop().time() + 90
        while not good_offsets <= set(handled):
            assert asyncio.get_running_loop().time() < deadline, "a good record was not processed"
            await asyncio.sleep(0.1)
        poison = len(sent) // 2 - len([o for o in handled if o % 2 == 0])
        dead = await read_topic(config.bootstrap_servers, dlq(topic), expect=poison, timeout_s=60)
    finally:
        await broker.stop()
    dead_offsets = [int(header(r, "dlq_original_offset") or -1) for r in dead]
    assert len(dead_offsets) == len(set(dead_offsets)), "each poison dead-lettered once"
    assert sorted(dead_offsets + handled) == list(range(len(sent))), "every record accounted for"
    assert all(header(r, "dlq_reason") in {"malformed", "oversized", "unknown-type"} for r in dead)


async def test_garbage_trace_context_is_ignored_not_fatal(app: App) -> None:
    garbage = [
        ("traceparent", b"garbage"),
        ("traceparent", b"00-" + b"z" * 32 + b"-" + b"0" * 16 + b"-01"),
        ("traceparent", b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("traceparent", b"00-00000000000000000000000000000000-0000000000000000-01"),
        ("tracestate", b",,=,==,a=" + b"b" * 400),
        ("baggage", b"=;=;%%%," + b"k=v;" * 200),
    ]

    def replace(name: str, value: bytes) -> Callable[[RawHeaders], RawHeaders]:
        return lambda headers: [*(h for h in headers if h[0] != name), (name, value)]

    await app.send(*(with_headers(n, replace(*g)) for n, g in enumerate(garbage, 1)))
    await app.processed(len(garbage))
    assert sorted(app.seen) == list(range(1, len(garbage) + 1))


async def test_a_batch_consumer_refuses_each_poison_alone_in_the_same_poll(
    kafka_config: KafkaConfig,
) -> None:
    topic = f"test.batch.{uuid.uuid4().hex[:8]}"
    config = kafka_config.model_copy(update={"retry_backoff_ms": 10})
    await ensure_topics(config, [TopicSpec(topic, partitions=1), TopicSpec(dlq(topic), 1)])
    _, key, headers = good(0)
    poison = [
        with_headers(1, lambda h: [*h, (RawName(b"\xfe\xff"), b"v")]),
        with_headers(2, lambda h: [*h, ("x-null", None)]),
        with_headers(3, lambda h: [*h, ("x-latin", b"caf\xe9")]),
        (b'{"n": 4, "pad": "' + b"x" * (2 * MiB) + b'"}', key, headers),
        (b"[" * 50_000 + b"]" * 50_000, key, headers),
    ]
    sent = [r for pair in zip(poison, [good(n) for n in range(11, 16)], strict=True) for r in pair]
    # All on the topic before the consumer starts, so they arrive in one poll.
    await publish_raw(config.bootstrap_servers, topic, *sent)
    broker, _ = build_broker(
        config, source="/test", policy=DeadLetterPolicy(config, consumer="batch-test")
    )
    handled: list[int] = []
    polls: list[int] = []
    sub = subscribe_batch(broker, topic, group_id=f"g-{topic}", config=config, max_records=100)

    @sub
    async def on_batch(_body: Any, msg: KafkaMessage) -> None:
        rejected: list[tuple[ConsumerRecord[Any, Any], BaseException]] = []
        polls.append(len(records_of(msg)))
        for record in records_of(msg):
            try:
                validate_body(Ping, check_envelope(record, ACCEPTED, config.max_message_bytes))
            except (DecodeError, ValidationError) as exc:
                rejected.append((record, exc))
            else:
                handled.append(record.offset)
        if rejected:
            raise RejectedRecords(rejected)

    await broker.start()
    try:
        dead = await app_dead_letters(config, topic, expect=len(poison))
    finally:
        await broker.stop()
    assert sorted(handled) == [1, 3, 5, 7, 9], "every good record in the poll was processed"
    assert [int(header(r, "dlq_original_offset") or -1) for r in dead] == [0, 2, 4, 6, 8]
    assert [header(r, "dlq_reason") for r in dead] == ["malformed"] * 3 + [
        "oversized",
        "malformed",
    ]
    assert polls[0] > 2, "the poison came in one poll with good records"


async def app_dead_letters(
    config: KafkaConfig, topic: str, expect: int
) -> list[ConsumerRecord[bytes, bytes]]:
    return await read_topic(config.bootstrap_servers, dlq(topic), expect=expect, timeout_s=60)


ACCEPTED = frozenset({Ping.ce_type})
