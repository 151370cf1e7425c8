"""Sending replies for request/reply over Kafka (FastStream's own `request()` refuses real Kafka)."""

from __future__ import annotations

import re

from faststream.kafka import KafkaBroker

from moment_contracts.base import Contract
from moment_contracts.envelope import CORRELATION_ID, REPLY_TO, Envelope

# Replies may only go to reply topics: a forged reply_to must not let a caller write into, say,
# audit.events with the service's credentials.
_REPLY_TOPIC = re.compile(r"^replies\.[A-Za-z0-9._-]{1,200}$")


class Replier:
    def __init__(self, broker: KafkaBroker, source: str) -> None:
        self._broker = broker
        self._source = source

    async def send(self, request: Envelope, body: Contract) -> bool:
        reply_to = request.extra.get(REPLY_TO, "")
        if not _REPLY_TOPIC.fullmatch(reply_to):
            return False
        correlation_id = request.extra.get(CORRELATION_ID) or request.id
        reply = Envelope.of(
            body, source=self._source, subject=request.subject, extra={CORRELATION_ID: correlation_id}
        )
        await self.send_raw(reply_to, reply, correlation_id)
        return True

    async def send_raw(self, topic: str, reply: Envelope, correlation_id: str) -> None:
        headers = {name: value.decode() for name, value in reply.headers()}
        await self._broker.publish(
            reply.data, topic=topic, key=reply.key, headers=headers, correlation_id=correlation_id
        )
