"""Publishing hand-made envelopes, as a misbehaving or redelivering producer would."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from moment_contracts.envelope import Envelope


async def publish(bootstrap: str, topic: str, *envelopes: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic, envelope.data, key=envelope.key, headers=envelope.headers()
            )
    finally:
        await producer.stop()
