"""Reading a client's reply topic, whatever is written to it.

Anyone who can write to the topic can put anything there: null or non-UTF-8 headers, no
correlation id, bodies of any size, records aiokafka cannot even unpack. None of it may stop the
reader, or every later call of the client would time out. A record that is not a reply to a
pending request is dropped, logged (offset and reason only) and counted, and reading goes on.
Memory stays bounded: fetches are capped in bytes and records, and an oversized record is
dropped before it is parsed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CorruptRecordException, KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry import metrics

from moment_contracts.envelope import CORRELATION_ID, Envelope, from_kafka

log = logging.getLogger(__name__)
_dropped = metrics.get_meter("moment.client").create_counter(
    "moment.client.replies_dropped",
    description="Records on a client's reply topic that were not a reply to a pending request",
)
# Records handed over per fetch: a burst of junk is worked through in bounded steps.
FETCH_RECORDS = 100
RETRY_S = 0.1


class ReplyReader:
    """Hands each reply to `deliver(correlation_id, envelope)`, which answers True when it took
    it, False when no request waits for it, or the reason it refused it; drops everything else."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        partition: TopicPartition,
        max_bytes: int,
        deliver: Callable[[str, Envelope], bool | str],
    ) -> None:
        self._consumer = consumer
        self._partition = partition
        self._max_bytes = max_bytes
        self._deliver = deliver
        # After a record aiokafka could not unpack, records are taken one at a time, so the
        # position names the bad one and only it is skipped.
        self._careful = False
        self.dropped: Counter[str] = Counter()

    async def run(self) -> None:
        while True:
            try:
                await self.read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reader must outlive anything
                self.drop("reader-error", None, type(exc).__name__)
                await asyncio.sleep(RETRY_S)

    async def read_once(self) -> None:
        try:
            batches = await self._consumer.getmany(
                self._partition, timeout_ms=1000, max_records=1 if self._careful else FETCH_RECORDS
            )
        except CorruptRecordException as exc:
            await self._unreadable(exc)
            return
        except KafkaError as exc:
            # The broker, not a record: try again, skipping nothing.
            log.warning("reply fetch failed, retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(RETRY_S)
            return
        except Exception as exc:  # noqa: BLE001 - a record aiokafka cannot unpack
            await self._unreadable(exc)
            return
        records = batches.get(self._partition, [])
        # Caught up: the unreadable record, if any, was skipped.
        self._careful = self._careful and bool(records)
        for record in records:
            self.accept(record)

    async def _unreadable(self, exc: Exception) -> None:
        if not self._careful:
            # The bad record is somewhere in what was just fetched: find it one at a time.
            self._careful = True
            return
        position = await self._consumer.position(self._partition)
        self._consumer.seek(self._partition, position + 1)
        self.drop("unreadable", position, type(exc).__name__)

    def accept(self, record: ConsumerRecord[Any, Any]) -> None:
        """Deliver one record if it is a reply someone waits for; drop it otherwise."""
        value = record.value
        if value is not None and not isinstance(value, bytes):
            self.drop("malformed", record.offset, "body")
            return
        if len(value or b"") > self._max_bytes:
            self.drop("oversized", record.offset, str(len(value or b"")))
            return
        try:
            envelope = from_kafka(record.headers, value or b"")
            correlation_id = envelope.extra.get(CORRELATION_ID, "")
        except Exception as exc:  # noqa: BLE001 - whatever the headers hold
            self.drop("malformed", record.offset, type(exc).__name__)
            return
        outcome = self._deliver(correlation_id, envelope) if correlation_id else False
        if outcome is True:
            return
        if isinstance(outcome, str):
            # Claims to answer a pending request but fails its check (a forged reply).
            self.drop(outcome, record.offset, None)
        else:
            # Also a reply that came after its request timed out: routine, not an attack.
            self.drop("unmatched", record.offset, None)

    def drop(self, reason: str, offset: int | None, detail: str | None) -> None:
        self.dropped[reason] += 1
        _dropped.add(1, {"reason": reason})
        level = logging.DEBUG if reason == "unmatched" else logging.WARNING
        log.log(
            level, "reply dropped", extra={"reason": reason, "offset": offset, "detail": detail}
        )
