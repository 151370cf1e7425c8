"""Publishing hand-made envelopes, as a misbehaving or redelivering producer would."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer import message_accumulator as accumulator
from aiokafka.producer import producer as producer_module
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.structs import ConsumerRecord, RecordMetadata

from moment_contracts.envelope import Envelope


async def publish(bootstrap: str, topic: str, *envelopes: Envelope) -> list[RecordMetadata]:
    """Each envelope acknowledged in turn; where each landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [
            await producer.send_and_wait(
                topic, envelope.data, key=envelope.key, headers=envelope.headers()
            )
            for envelope in envelopes
        ]
    finally:
        await producer.stop()


async def resend_raw(bootstrap: str, record: ConsumerRecord[bytes, bytes]) -> None:
    """A captured record again, byte for byte (same key, headers and body), on the same topic of
    the broker at `bootstrap`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            record.topic, record.value, key=record.key, headers=list(record.headers)
        )
    finally:
        await producer.stop()


class RawName(str):
    """A header name that encodes to arbitrary bytes (say, not UTF-8), as a hostile producer
    writes it; only aiokafka's pure-Python batch builder asks the name for its bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


RawHeaders = list[tuple[str, bytes | None]]


async def publish_raw(
    bootstrap: str,
    topic: str,
    *records: tuple[bytes | None, bytes | None, RawHeaders],
    max_request_size: int = 16 * 1024 * 1024,
) -> None:
    """Send (value, key, headers) records exactly as given: header values may be None, names
    RawName, values as large as `max_request_size` allows. Each record is its own batch."""
    with pytest.MonkeyPatch.context() as patch:
        for module in (accumulator, producer_module):
            patch.setattr(module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size
        )
        await producer.start()
        try:
            for value, key, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()
