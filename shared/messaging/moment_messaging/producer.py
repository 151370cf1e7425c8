"""A Kafka producer that survives the broker going away.

The outbox relay must keep trying until the broker is back, so this wrapper starts its aiokafka
producer lazily and throws it away after a failure: a fresh one re-reads the cluster metadata, which
a restarted Tansu (same address, empty state) needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from moment_messaging.admin import BrokerUnavailable
from moment_messaging.config import KafkaConfig

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not acknowledge a record. Nothing is marked sent; the caller retries."""


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


class ResilientProducer:
    def __init__(
        self,
        config: KafkaConfig,
        client_suffix: str = "relay",
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`on_connect` runs before each new connection is used: a broker that lost its state
        (Tansu after a restart) gets its topics back before the first record, instead of
        auto-creating them with the wrong settings."""
        self._on_connect = on_connect
        self._config = config
        self._client_id = f"{config.client_id}-{client_suffix}"
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._config.bootstrap_servers,
                    client_id=self._client_id,
                    acks=self._config.acks,
                    enable_idempotence=self._config.enable_idempotence,
                    request_timeout_ms=self._config.request_timeout_ms,
                    max_request_size=self._config.max_message_bytes * 4,
                    linger_ms=1,
                    transactional_id=(
                        f"{self._client_id}-tx" if self._config.transactional else None
                    ),
                )
                try:
                    if self._on_connect is not None:
                        await self._on_connect()
                    await producer.start()
                except (KafkaError, OSError, BrokerUnavailable) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise PublishError(f"broker unreachable: {type(exc).__name__}") from exc
                self._producer = producer
            return self._producer

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        """Send every record and wait for each acknowledgement (acks=all by default)."""
        producer = await self._ensure()
        try:
            if self._config.transactional:
                async with producer.transaction():
                    await self._send(producer, records)
            else:
                await self._send(producer, records)
        except (KafkaError, OSError) as exc:
            await self._discard()
            raise PublishError(f"publish failed: {type(exc).__name__}") from exc

    @staticmethod
    async def _send(producer: AIOKafkaProducer, records: Sequence[OutgoingRecord]) -> None:
        futures = [
            await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records
        ]
        await asyncio.gather(*futures)

    async def _discard(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def stop(self) -> None:
        await self._discard()
