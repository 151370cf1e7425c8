"""Request/reply over Kafka for storefront services.

Each client instance owns a reply topic, read by manual partition assignment (no consumer-group
join, which works on every broker including Tansu and is fast). Requests carry a correlation id and
the reply topic in headers; a reply is matched to its waiting future by the correlation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field, ValidationError

from moment_client.admin import create_topics
from moment_client.errors import (
    MomentClientError,
    RequestTimeout,
    ServiceError,
    UnexpectedReply,
)
from moment_client.reader import ReplyReader
from moment_client.reply_check import ReplyCheck
from moment_contracts.base import Contract
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope
from moment_contracts.errors import ErrorReply
from moment_contracts.topics import TopicSpec, reply_topic

T = TypeVar("T", bound=Contract)
_tracer = trace.get_tracer("moment.client")
# Replies naming a key the client doesn't know yet, held per request until it has learnt the key;
# more are dropped, so records written to the reply topic can't grow memory.
HELD_REPLIES = 4


@dataclass
class _Pending:
    """A request waiting for its reply. The reader puts each candidate in `replies`: authentic
    ones (True), and a few it could not judge yet (None)."""

    request: Envelope
    check: ReplyCheck | None
    replies: asyncio.Queue[tuple[Envelope, bool | None]] = field(default_factory=asyncio.Queue)
    held: int = 0
    answered: bool = False
    waiter: asyncio.Future[Envelope] | None = None


class ClientConfig(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    source: str = Field(default="/storefront", description="CloudEvents source of this caller")
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:12], pattern=r"^[A-Za-z0-9._-]{1,200}$"
    )
    timeout_s: float = Field(default=10.0, gt=0)
    fetch_max_wait_ms: int = 5
    # The contract's record limit: a bigger record on the reply topic is dropped unparsed, and
    # no fetch holds more than a few of them.
    max_reply_bytes: int = Field(default=256 * 1024, ge=1024)


class RequestClient:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.reply_topic = reply_topic(config.instance_id)
        self._pending: dict[str, _Pending] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.replies: ReplyReader | None = None

    async def __aenter__(self) -> RequestClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await create_topics(
            self.config.bootstrap_servers,
            [TopicSpec(self.reply_topic, partitions=1)],
            client_id="moment-client",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers, acks="all", linger_ms=0
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * self.config.max_reply_bytes,
            fetch_max_bytes=4 * self.config.max_reply_bytes,
        )
        await self._producer.start()
        await self._consumer.start()
        partition = TopicPartition(self.reply_topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_end(partition)
        # seek_to_end is lazy: resolve the position now so no reply sent after start() is skipped.
        await self._consumer.position(partition)
        self.replies = ReplyReader(
            self._consumer, partition, self.config.max_reply_bytes, self._deliver
        )
        self._reader = asyncio.create_task(self.replies.run(), name="reply-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for part in (self._consumer, self._producer):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        for pending in self._pending.values():
            if pending.waiter is not None:
                pending.waiter.cancel()

    async def request(
        self,
        topic: str,
        body: Contract,
        expect: type[T],
        *,
        subject: str | None = None,
        request_id: str | None = None,
        timeout_s: float | None = None,
        check: ReplyCheck | None = None,
    ) -> T:
        """Send `body` and wait for a reply of type `expect`; an error reply raises ServiceError.
        With `check`, only a reply it finds authentic is taken: others are dropped, and the
        request goes on waiting for its real reply."""
        if self._producer is None:
            raise RuntimeError("RequestClient.start() was not called")
        request_id = request_id or str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        timeout = timeout_s or self.config.timeout_s
        with _tracer.start_as_current_span(f"{topic} request", kind=SpanKind.CLIENT):
            extra: dict[str, str] = {CORRELATION_ID: correlation_id, REPLY_TO: self.reply_topic}
            propagate.inject(extra)
            envelope = Envelope.of(
                body, source=self.config.source, subject=subject, id=request_id, extra=extra
            )
            pending = _Pending(envelope, check)
            self._pending[correlation_id] = pending
            try:
                await self._producer.send_and_wait(
                    topic, envelope.data, key=envelope.key, headers=envelope.headers()
                )
                pending.waiter = asyncio.ensure_future(self._authentic(pending))
                reply = await asyncio.wait_for(pending.waiter, timeout)
            except TimeoutError:
                raise RequestTimeout(topic, timeout, request_id) from None
            finally:
                self._pending.pop(correlation_id, None)
        return self._decode(reply, expect)

    @staticmethod
    def _decode(reply: Envelope, expect: type[T]) -> T:
        try:
            if reply.type == ErrorReply.ce_type:
                error = ErrorReply.model_validate_json(reply.data)
            elif reply.type == expect.ce_type:
                return expect.model_validate_json(reply.data)
            else:
                raise UnexpectedReply(f"expected {expect.ce_type}, got {reply.type}")
        except ValidationError:
            # Locations only: the body may hold what the caller sent.
            raise UnexpectedReply(f"the {reply.type} reply breaks its schema") from None
        raise ServiceError(error)

    async def _authentic(self, pending: _Pending) -> Envelope:
        """The first authentic reply; a held one counts once its key is learnt (once)."""
        learnt = False
        while True:
            reply, verdict = await pending.replies.get()
            if verdict is None and pending.check is not None:
                if not learnt:
                    learnt = True
                    # Failing to learn the key leaves the reply unproven: dropped like a forgery.
                    with contextlib.suppress(MomentClientError):
                        await pending.check.learn()
                verdict = pending.check.verdict(pending.request, reply)
            if verdict:
                return reply
            if self.replies is not None:
                self.replies.drop("unauthenticated", None, reply.type)

    def _deliver(self, correlation_id: str, reply: Envelope) -> bool | str:
        """Hand a reply to the request waiting for it; False when none is, the reason to drop it
        when it fails the request's check."""
        pending = self._pending.get(correlation_id)
        if pending is None or pending.answered:
            return False
        verdict = True if pending.check is None else pending.check.verdict(pending.request, reply)
        if verdict is False:
            return "unauthenticated"
        if verdict is None:
            if pending.held >= HELD_REPLIES:
                return "unauthenticated"
            pending.held += 1
        else:
            pending.answered = True
        pending.replies.put_nowait((reply, verdict))
        return True

    def pending(self) -> dict[str, Any]:
        return dict(self._pending)
