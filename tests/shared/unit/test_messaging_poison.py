"""The consumer's poison checks in process, many cases: records aiokafka can't unpack are handed
on, and whatever headers, key and body arrive, the parser either accepts the record or refuses it
with a DecodeError, and its dead letter fits."""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from aiokafka.consumer.fetcher import READ_UNCOMMITTED
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moment_client import fetching
from moment_contracts.base import Contract
from moment_contracts.envelope import (
    CORRELATION_ID,
    REPLY_TO,
    Envelope,
    EnvelopeLimits,
    header_ok,
)
from moment_contracts.registry import DecodeError
from moment_contracts.topics import TopicSpec, dlq
from moment_messaging.admin import with_record_limit
from moment_messaging.deadletter import (
    DLQ_PREFIX_BYTES,
    _reply_address,
    check_record,
    dead_letter_record,
)
from tests.support.produce import RawName

MAX_BYTES = 4096
TP = TopicPartition("t", 0)


class Ping(Contract):
    ce_type: ClassVar[str] = "moment.test.ping.v1"
    n: int


ACCEPTED = frozenset({Ping.ce_type})


def _batch(base_offset: int, *records: tuple[bytes, list[tuple[str, bytes | None]]]) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, -1, 1 << 20)
    for delta, (value, headers) in enumerate(records):
        builder.append(delta, 1_700_000_000_000, None, value, headers)
    raw = bytearray(builder.build())
    raw[0:8] = struct.pack(">q", base_offset)  # what the broker assigns
    return bytes(raw)


def _unpack(buffer: bytes, fetch_offset: int = 0) -> list[ConsumerRecord[Any, Any]]:
    records = fetching.TolerantPartitionRecords(
        TP, MemoryRecords(buffer), [], fetch_offset, None, None, True, READ_UNCOMMITTED
    )
    return list(records)


def test_a_record_aiokafka_cannot_unpack_is_handed_on_with_its_offset() -> None:
    bad = RawName(b"x-\xff")
    buffer = (
        _batch(0, (b"a", [("h", b"1")])) + _batch(1, (b"b", [(bad, b"v")])) + _batch(2, (b"c", []))
    )
    got = _unpack(buffer)
    assert [r.offset for r in got] == [0, 1, 2]
    assert [type(r) for r in got] == [ConsumerRecord, fetching.UnreadableRecord, ConsumerRecord]
    assert got[1].problem == "a header name is not UTF-8"
    assert (got[1].value, got[1].headers) == (None, ())


def test_records_after_an_unreadable_one_in_its_batch_each_keep_their_offset() -> None:
    bad = RawName(b"\xc3")
    buffer = _batch(10, (b"a", []), (b"b", [(bad, b"")]), (b"c", []), (b"d", [])) + _batch(
        14, (b"e", [])
    )
    got = _unpack(buffer, fetch_offset=10)
    assert [(r.offset, type(r).__name__) for r in got] == [
        (10, "ConsumerRecord"),
        (11, "UnreadableRecord"),
        (12, "UnreadableRecord"),
        (13, "UnreadableRecord"),
        (14, "ConsumerRecord"),
    ]
    # Fetched again from past the bad record (what the consumer's position now says), the batch
    # hands on nothing twice.
    assert [r.offset for r in _unpack(buffer, fetch_offset=12)] == [12, 13, 14]


def _record(value: bytes | None, key: bytes | None, headers: Any) -> ConsumerRecord[Any, Any]:
    size = len(value) if value is not None else -1
    return ConsumerRecord("t", 0, 5, 0, 0, key, value, None, -1, size, headers)


def _good_headers(**extra: str) -> list[tuple[str, bytes | None]]:
    envelope = Envelope.of(Ping(n=1), source="/test", subject="s-1", extra=extra)
    return list(envelope.headers())


NAMES = st.sampled_from(
    [
        "ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject",
        "ce_dataschema", "content-type", REPLY_TO, CORRELATION_ID, "traceparent", "tracestate",
        "ce_other", "x",
    ]
) | st.text(max_size=80)  # fmt: skip
VALUES = st.none() | st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
BODIES = (
    st.binary(max_size=600)
    | st.just(b'{"n": 1}')
    | st.integers(0, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.recursive(st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3)).map(
        lambda data: __import__("json").dumps({"n": 1, "x": data}).encode()
    )
)


@st.composite
def records(draw: st.DrawFn) -> ConsumerRecord[Any, Any]:
    headers: list[tuple[str, bytes | None]] = _good_headers(**{REPLY_TO: "replies.a"})
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(["set", "add", "drop"]))
        if edit == "drop" and headers:
            headers.pop(draw(st.integers(0, len(headers) - 1)))
        elif edit == "add":
            headers.append((draw(NAMES), draw(VALUES)))
        elif headers:
            at = draw(st.integers(0, len(headers) - 1))
            headers[at] = (headers[at][0], draw(VALUES))
    if draw(st.booleans()):
        headers.extend(("x-many", b"v") for _ in range(draw(st.integers(0, 40))))
    key = draw(st.none() | st.binary(max_size=5000))
    return _record(draw(BODIES), key, tuple(headers))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_any_record_is_accepted_or_refused_with_a_reason_and_its_dead_letter_fits(
    record: ConsumerRecord[Any, Any],
) -> None:
    envelope: Envelope | DecodeError
    try:
        envelope = check_record(record, ACCEPTED, MAX_BYTES)
    except DecodeError as exc:
        envelope = exc
    if isinstance(envelope, DecodeError):
        assert envelope.reason in {"malformed", "oversized", "unknown-type"}
        assert str(envelope) != "the headers are out of bounds", "every refusal says why"
    else:
        assert envelope.type == Ping.ce_type
        assert len(envelope.id) <= EnvelopeLimits.ID_CHARS
    value, key, headers = dead_letter_record(record, MAX_BYTES)
    size = len(value) + len(key or b"") + sum(len(n) + len(v.encode()) for n, v in headers.items())
    assert size <= MAX_BYTES + 2 * DLQ_PREFIX_BYTES + EnvelopeLimits.MAX_HEADERS * (
        EnvelopeLimits.MAX_HEADER_NAME_BYTES + 3 * EnvelopeLimits.MAX_HEADER_VALUE_BYTES
    )
    address = _reply_address(record, MAX_BYTES)
    if address is not None:
        asked = [v for n, v in record.headers if n == REPLY_TO]
        assert address.extra[REPLY_TO].encode() == asked[0]
        assert header_ok(REPLY_TO, address.extra[REPLY_TO])
        assert header_ok(CORRELATION_ID, address.extra[CORRELATION_ID])


def test_the_dead_letter_of_an_oversized_record_is_a_digest() -> None:
    headers = _good_headers()
    record = _record(b"x" * (10 * MAX_BYTES), b"k" * (10 * MAX_BYTES), tuple(headers))
    value, key, dead = dead_letter_record(record, MAX_BYTES)
    assert len(value) == len(key or b"") == DLQ_PREFIX_BYTES
    assert dead["dlq_original_size"] == str(10 * MAX_BYTES)
    assert dead["dlq_truncated"] == "true"
    assert "ce_id" not in dead, "an oversized record's headers are not copied"


def test_a_refusal_is_answered_only_to_a_well_formed_reply_topic() -> None:
    for reply_to, expected in [
        ("replies.abc", True),
        ("replies.a b", False),
        ("replies." + "r" * 300, False),
        ("..", False),
    ]:
        headers = [("ce_id", b"x" * 500), (REPLY_TO, reply_to.encode()), (CORRELATION_ID, b"c")]
        assert (
            _reply_address(_record(b"{}", None, tuple(headers)), MAX_BYTES) is not None
        ) is expected
    assert (
        _reply_address(_record(b"{}", None, ((REPLY_TO, b"replies.a"), ("ce_id", None))), MAX_BYTES)
        is None
    )


def test_topics_are_created_with_the_contract_record_limit() -> None:
    limit = 256 * 1024
    plain = with_record_limit(TopicSpec("identity.commands"), limit)
    dead = with_record_limit(TopicSpec(dlq("identity.commands")), limit)
    own = with_record_limit(TopicSpec("x", config=(("max.message.bytes", "5"),)), limit)
    assert dict(plain.config) == {"cleanup.policy": "delete", "max.message.bytes": "263168"}
    assert dict(dead.config)["max.message.bytes"] == str(2 * limit + 1024)
    assert dict(own.config) == {"max.message.bytes": "5"}
