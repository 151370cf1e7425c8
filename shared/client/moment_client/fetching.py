"""Records aiokafka cannot read are handed on as `UnreadableRecord`s, not raised forever.

aiokafka decodes header names as strict UTF-8 while it unpacks a fetched batch. One record with a
header name that is not UTF-8 (or a record its parser rejects) raises out of `getone()` /
`getmany()` before the consumer has moved past it: FastStream logs nothing useful, the partition is
fetched again from the same offset, raises again, and stops for good while burning CPU. aiokafka
has no hook for this, so `install()` swaps its `PartitionRecords` for a subclass whose batches
yield an `UnreadableRecord` (topic, partition, offset, no headers, no value) in place of such a
record. The consumer's position moves past it, the dead-letter parser refuses it as `malformed`,
and the original stays addressable by topic, partition and offset.

aiokafka's batch iterator cannot skip a record it failed to parse, so the records after it in the
same producer batch become `UnreadableRecord`s too (each dead-lettered with its own offset). Our
producers don't batch poison with good records, and an attacker's batch is the attacker's loss.

It lives in the client library because the client's reply reader needs it as much as the services'
consumers do (moment_messaging.runtime.build_broker installs it for the services).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import errors
from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord, TopicPartition

# The parse errors of one record; a CRC failure is checked per batch before this and is retried.
_UNREADABLE = (UnicodeDecodeError, errors.CorruptRecordException)


@dataclass
class UnreadableRecord(ConsumerRecord[bytes, bytes]):  # type: ignore[misc]
    """A record aiokafka could not unpack; `problem` says why, naming no value."""

    problem: str = "unreadable record"


@dataclass(frozen=True)
class _Stub:
    """Quacks like an aiokafka record for PartitionRecords' loop."""

    offset: int
    timestamp: int
    problem: str
    timestamp_type: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    checksum: None = None


class _TolerantBatch:
    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # a control batch's marker is read with next()
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        batch = self._batch
        records = iter(batch)
        last: int | None = None
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except _UNREADABLE as exc:
                yield from _stubs(batch, batch.base_offset if last is None else last + 1, exc)
                return
            last = record.offset
            yield record


def _stubs(batch: Any, first: int, exc: BaseException) -> Iterator[_Stub]:
    problem = (
        "a header name is not UTF-8"
        if isinstance(exc, UnicodeDecodeError)
        else "the record could not be unpacked"
    )
    yield _Stub(first, batch.first_timestamp, problem)
    for offset in range(first + 1, batch.next_offset):
        yield _Stub(offset, batch.first_timestamp, "follows an unreadable record in its batch")


class _TolerantRecords:
    def __init__(self, records: Any) -> None:
        self._records = records

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> _TolerantBatch:
        return _TolerantBatch(self._records.next_batch())

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())


class TolerantPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    def __init__(self, tp: TopicPartition, records: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tp, _TolerantRecords(records), *args, **kwargs)

    def _consumer_record(self, tp: TopicPartition, record: Any) -> ConsumerRecord[Any, Any]:
        if not isinstance(record, _Stub):
            return super()._consumer_record(tp, record)
        return UnreadableRecord(
            tp.topic, tp.partition, record.offset, record.timestamp, 0, None, None, None, -1, -1,
            (), problem=record.problem,
        )  # fmt: skip


def install() -> None:
    """Make every aiokafka consumer in this process hand on unreadable records (idempotent)."""
    fetcher.PartitionRecords = TolerantPartitionRecords
