"""Whatever lands on a client's reply topic, the reader drops it without harm and the next reply
still reaches its caller (fuzzed in-process; tests/shared/integration/test_client_replies.py
writes generated records to a real reply topic)."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, example, given, settings

from moment_client.reader import ReplyReader
from moment_contracts.envelope import CORRELATION_ID, Envelope
from moment_contracts.errors import ErrorCode, ErrorReply
from tests.support.poison_records import (
    Headers,
    bodies,
    deep,
    headers_over,
    keys,
    record,
)

LIMIT = 256 * 1024
WAITING = str(uuid.uuid4())
REPLY = Envelope.of(
    ErrorReply.of(ErrorCode.INTERNAL), source="/identity", extra={CORRELATION_ID: WAITING}
)
REPLY_HEADERS: Headers = list(REPLY.headers())


class Waiting:
    """The client's side: one request waits for `WAITING`."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Envelope]] = []

    def deliver(self, correlation_id: str, reply: Envelope) -> bool:
        if correlation_id != WAITING:
            return False
        self.delivered.append((correlation_id, reply))
        return True


def reader(waiting: Waiting) -> ReplyReader:
    # accept() never touches the consumer: no broker needed.
    consumer = cast("AIOKafkaConsumer", None)
    return ReplyReader(consumer, TopicPartition("replies.x", 0), LIMIT, waiting.deliver)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(headers=headers_over(REPLY_HEADERS), value=bodies(REPLY.data, LIMIT), key=keys)
@example(headers=[*REPLY_HEADERS, ("x-null", None)], value=REPLY.data, key=None)
@example(headers=[(CORRELATION_ID, None), *REPLY_HEADERS], value=REPLY.data, key=None)
@example(headers=[*REPLY_HEADERS, ("x-bad", b"\xff")], value=REPLY.data, key=b"\xff")
@example(headers=REPLY_HEADERS[:-1], value=REPLY.data, key=None)
@example(headers=REPLY_HEADERS, value=deep(), key=None)
@example(headers=REPLY_HEADERS, value=b"x" * (20 * LIMIT), key=None)
def test_anything_on_the_reply_topic_is_dropped_or_delivered_and_the_next_reply_arrives(
    headers: Headers, value: bytes | None, key: bytes | None
) -> None:
    waiting = Waiting()
    replies = reader(waiting)
    tracemalloc.start()
    try:
        started = time.monotonic()
        replies.accept(record(headers, value, key=key, offset=7))
        assert time.monotonic() - started < 1.0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * LIMIT, f"one record took {peak} bytes"
    handled = len(waiting.delivered) + sum(replies.dropped.values())
    assert handled == 1, "every record is delivered or counted as dropped"
    first = len(waiting.delivered)
    waiting.delivered.clear()
    replies.accept(record(REPLY_HEADERS, REPLY.data, offset=8))
    assert [c for c, _ in waiting.delivered] == [WAITING], "the next reply was not delivered"
    if first:
        # A record delivered as a reply carried the waiting request's correlation id.
        assert dict(headers).get(CORRELATION_ID) == WAITING.encode()


def test_a_reply_nobody_waits_for_is_counted_not_delivered() -> None:
    waiting = Waiting()
    replies = reader(waiting)
    stray: list[Any] = [(n, v) for n, v in REPLY_HEADERS if n != CORRELATION_ID]
    replies.accept(record([*stray, (CORRELATION_ID, b"someone-else")], REPLY.data))
    replies.accept(record(stray, REPLY.data))
    assert replies.dropped == {"unmatched": 2}
    assert waiting.delivered == []
