"""Replies for request/reply over Kafka (FastStream's own `request()` refuses real Kafka)."""

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
        self.source = source

    async def send(self, request: Envelope, body: Contract) -> bool:
        reply = Envelope.of(body, source=self.source, subject=request.subject)
        return await self.send_envelope(request, reply)

    async def send_envelope(self, request: Envelope, reply: Envelope) -> bool:
        """Send `reply` to the request's reply topic; False when the request asked for none."""
        reply_to = request.extra.get(REPLY_TO, "")
        if not _REPLY_TOPIC.fullmatch(reply_to):
            return False
        correlation_id = request.extra.get(CORRELATION_ID) or request.id
        headers = {name: value.decode() for name, value in reply.headers()}
        headers[CORRELATION_ID] = correlation_id
        await self._broker.publish(
            reply.data,
            topic=reply_to,
            key=reply.key,
            headers=headers,
            correlation_id=correlation_id,
        )
        return True
