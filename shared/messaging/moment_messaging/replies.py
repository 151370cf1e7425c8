"""Replies for request/reply over Kafka (FastStream's own `request()` refuses real Kafka).

A reply goes only to a reply topic (`moment_contracts.topics.reply_topic`'s naming) that already
exists. Anyone who can write a request chooses its `reply_to`: a forged one must neither let them
write into, say, audit.events with the service's credentials, nor make the service create topics.
aiokafka asks for a topic's metadata before its first send to it, allowing auto-creation, and
Tansu (like Kafka with `auto.create.topics.enable`) creates the topic then; a produce without
metadata creates nothing. So the topic is looked up first with auto-creation off, and a reply to
a topic that doesn't exist is dropped with a warning and a metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Protocol

from aiokafka import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest
from faststream.kafka import KafkaBroker
from opentelemetry import metrics

from moment_contracts.base import Contract
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope
from moment_contracts.topics import is_reply_topic

log = logging.getLogger(__name__)
_dropped = metrics.get_meter("moment.messaging").create_counter(
    "moment.replies.dropped", description="Replies not sent: their reply_to is no reply topic"
)
# An existing reply topic is looked up again after this long; a missing one sooner, so a client
# whose topic was just created is answered, yet a flood of made-up names costs one lookup each
# per second at most.
FOUND_TTL_S = 30.0
MISSING_TTL_S = 1.0
# Names remembered at most, so made-up names can't grow the cache without bound.
CACHE_SIZE = 10_000


class ReplyTopics:
    """Which reply topics exist, asked of the broker without ever creating one."""

    def __init__(self, bootstrap_servers: str, *, client_id: str = "moment-replies") -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._client: AIOKafkaClient | None = None
        self._lock = asyncio.Lock()
        # topic -> (exists, until when that answer holds)
        self._answers: dict[str, tuple[bool, float]] = {}

    async def exists(self, topic: str) -> bool:
        now = time.monotonic()
        known = self._answers.get(topic)
        if known is not None and known[1] > now:
            return known[0]
        found = await self._ask(topic)
        if len(self._answers) >= CACHE_SIZE:
            self._answers = {k: v for k, v in self._answers.items() if v[1] > now}
            if len(self._answers) >= CACHE_SIZE:
                self._answers.clear()
        self._answers[topic] = (found, now + (FOUND_TTL_S if found else MISSING_TTL_S))
        return found

    async def _ask(self, topic: str) -> bool:
        client = await self._started()
        request = MetadataRequest([topic], allow_auto_topic_creation=False)
        response = await client.send(client.get_random_node(), request)
        # Every version's topic entry starts (error_code, name, ...); 0 is "no error".
        return any(entry[0] == 0 and entry[1] == topic for entry in response.topics)

    async def _started(self) -> AIOKafkaClient:
        async with self._lock:
            if self._client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self._bootstrap_servers, client_id=self._client_id
                )
                try:
                    await client.bootstrap()
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


class ReplyAuthenticator(Protocol):
    def headers(self, request: Envelope, reply: Envelope, correlation_id: str) -> Mapping[str, str]:
        """Headers that prove the reply to its requester (none when the request allows none)."""
        ...


class Replier:
    def __init__(self, broker: KafkaBroker, source: str, topics: ReplyTopics) -> None:
        self._broker = broker
        self.source = source
        self.topics = topics
        # Set by a service whose replies its requesters authenticate (identity's reply MACs).
        self.authenticator: ReplyAuthenticator | None = None

    async def send(self, request: Envelope, body: Contract) -> bool:
        reply = Envelope.of(body, source=self.source, subject=request.subject)
        return await self.send_envelope(request, reply)

    async def send_envelope(self, request: Envelope, reply: Envelope) -> bool:
        """Send `reply` to the request's reply topic; False when there is none to send it to."""
        reply_to = request.extra.get(REPLY_TO, "")
        if not reply_to:
            return False
        if not is_reply_topic(reply_to) or not await self.topics.exists(reply_to):
            _dropped.add(1, {"reason": "no-reply-topic"})
            # The request's id, not the name: a made-up name is the sender's text.
            log.warning("reply dropped: no such reply topic", extra={"request_id": request.id})
            return False
        correlation_id = request.extra.get(CORRELATION_ID) or request.id
        headers = {name: value.decode() for name, value in reply.headers()}
        headers[CORRELATION_ID] = correlation_id
        if self.authenticator is not None:
            headers.update(self.authenticator.headers(request, reply, correlation_id))
        await self._broker.publish(
            reply.data,
            topic=reply_to,
            key=reply.key,
            headers=headers,
            correlation_id=correlation_id,
        )
        return True

    async def close(self) -> None:
        await self.topics.close()
