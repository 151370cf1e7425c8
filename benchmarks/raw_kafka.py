"""The raw baseline for request/reply: bare aiokafka, no envelopes, tracing, inbox or FastStream.

An echo reads the request topic by manual partition assignment and sends every record back to the
reply topic; the requester matches echoes to waiting futures by a correlation header, as
RequestClient does. A pipelined echo sends the replies of one fetched batch together, as a bare
consumer would; a serial echo waits for each reply's acknowledgement before the next record, as
a FastStream handler that publishes its reply does.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.context import FETCH_MAX_WAIT_MS
from moment_contracts.topics import TopicSpec
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig

REQUEST_PARTITIONS = 3
CORRELATION = "correlation_id"
Headers = list[tuple[str, bytes]]


class EchoTimeoutError(RuntimeError):
    """An echo did not come back in time."""


async def _tail(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    # seek_to_end is lazy: resolve the positions now so nothing sent after start-up is skipped.
    for partition in partitions:
        await consumer.position(partition)


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)


class RawEcho:
    """Echo server and requester in one, sharing nothing but the broker."""

    def __init__(self, kafka: KafkaConfig, *, pipelined: bool = True) -> None:
        self._kafka = kafka
        self._pipelined = pipelined
        mode = "pipelined" if pipelined else "serial"
        self._request_topic = TopicSpec(f"bench.echo.{mode}.requests", REQUEST_PARTITIONS)
        self._reply_topic = TopicSpec(f"bench.echo.{mode}.replies", partitions=1)
        bootstrap = kafka.bootstrap_servers
        self._echo_in, self._echo_out = _consumer(bootstrap), _producer(bootstrap)
        self._replies, self._requests = _consumer(bootstrap), _producer(bootstrap)
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        requests, replies = self._request_topic.name, self._reply_topic.name
        await ensure_topics(self._kafka, [self._request_topic, self._reply_topic])
        for part in (self._echo_in, self._echo_out, self._replies, self._requests):
            await part.start()
        await _tail(self._echo_in, [TopicPartition(requests, p) for p in range(REQUEST_PARTITIONS)])
        await _tail(self._replies, [TopicPartition(replies, 0)])
        self._tasks = [
            asyncio.create_task(self._echo(), name="raw-echo"),
            asyncio.create_task(self._match(), name="raw-echo-replies"),
        ]

    async def stop(self) -> None:
        """Stop everything; then re-raise what killed a background task, if anything did."""
        for task in self._tasks:
            task.cancel()
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        for part in (self._requests, self._replies, self._echo_out, self._echo_in):
            with contextlib.suppress(Exception):
                await part.stop()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome

    async def call(self, value: bytes, headers: Headers, timeout_s: float = 10.0) -> None:
        """One round trip: send `value` and wait until its echo is back."""
        correlation = uuid.uuid4().hex.encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            await self._requests.send_and_wait(
                self._request_topic.name, value, headers=[*headers, (CORRELATION, correlation)]
            )
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise EchoTimeoutError(f"no echo within {timeout_s:g}s") from None
        finally:
            self._pending.pop(correlation, None)

    async def _echo(self) -> None:
        topic = self._reply_topic.name
        while True:
            batch = await self._echo_in.getmany(timeout_ms=1_000)
            sent: list[Any] = []
            for record in (r for records in batch.values() for r in records):
                headers = list(record.headers)
                if self._pipelined:
                    sent.append(await self._echo_out.send(topic, record.value, headers=headers))
                else:
                    await self._echo_out.send_and_wait(topic, record.value, headers=headers)
            if sent:
                await asyncio.gather(*sent)

    async def _match(self) -> None:
        async for record in self._replies:
            correlation = dict(record.headers).get(CORRELATION, b"")
            future = self._pending.get(correlation)
            if future is not None and not future.done():
                future.set_result(None)
