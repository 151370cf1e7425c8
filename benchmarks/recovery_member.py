"""`python -m benchmarks.recovery_member BOOTSTRAP TOPIC GROUP`: the bare baseline of
benchmarks/recovery.py. One aiokafka group member with the same group timing as the services
(KafkaConfig's defaults), no framework: it prints "committed" each time it has committed a
poll's records, and runs until killed."""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer

from moment_messaging.config import KafkaConfig

COMMITTED = "committed"


async def member(bootstrap: str, topic: str, group: str) -> None:
    timing = KafkaConfig()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=timing.fetch_max_wait_ms,
        session_timeout_ms=timing.session_timeout_ms,
        heartbeat_interval_ms=timing.heartbeat_interval_ms,
        rebalance_timeout_ms=timing.rebalance_timeout_ms,
        max_poll_interval_ms=timing.max_poll_interval_ms,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            if batch:
                await consumer.commit()
                print(COMMITTED, flush=True)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(member(*sys.argv[1:4]))
