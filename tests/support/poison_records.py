"""Hypothesis strategies for records an attacker with write access to a topic could send.

Headers with null values, non-UTF-8 values, duplicated or missing CloudEvents attributes, any
key, and bodies from valid JSON to random bytes, deep nesting and sizes around the contract's
limit. `record(...)` builds the aiokafka `ConsumerRecord` a consumer would be handed, for the
per-record checks run in-process; `produce_raw` writes the same shapes to a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import aiokafka.producer.message_accumulator as accumulator
import aiokafka.producer.producer as producer_module
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.structs import ConsumerRecord, RecordMetadata
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

Headers = list[tuple[str, bytes | None]]
T = TypeVar("T")

CE_NAMES = (
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_specversion",
    "ce_time",
    "ce_subject",
    "ce_dataschema",
    "content-type",
    "correlation_id",
    "reply_to",
    "traceparent",
)
NON_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\x80", b"\xf8\x88\x80\x80\x80")
DEPTH = 100_000


def deep(depth: int = DEPTH, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def deep_object(depth: int = 40_000) -> bytes:
    """As deep as fits under the contract's 256 KiB."""
    return b'{"a":' * depth + b"1" + b"}" * depth


header_values: st.SearchStrategy[bytes | None] = st.one_of(
    st.none(),
    st.sampled_from(NON_UTF8),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.sampled_from((b"", b"1.0", b"0.3", b"replies.x", b"audit.events", b"x" * 5000)),
)
header_names = st.one_of(st.sampled_from(CE_NAMES), st.text(max_size=20))


def headers_over(base: Headers) -> st.SearchStrategy[Headers]:
    """`base` with some of its headers dropped, replaced or duplicated and others added."""
    changes = st.lists(st.tuples(header_names, header_values), max_size=6)
    keep = st.lists(st.booleans(), min_size=len(base), max_size=len(base))

    def build(kept: list[bool], extra: Headers, first: bool) -> Headers:
        out = [h for h, k in zip(base, kept, strict=True) if k]
        return [*extra, *out] if first else [*out, *extra]

    return st.builds(build, keep, changes, st.booleans())


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )


def bodies(valid: bytes, max_bytes: int) -> st.SearchStrategy[bytes | None]:
    """Bodies around a valid one: mutated, replaced, nested deep, or around the size limit."""
    as_dict = json.loads(valid)

    def mutated(changes: dict[str, Any]) -> bytes:
        return json.dumps({**as_dict, **changes}).encode()

    return st.one_of(
        st.none(),
        st.just(valid),
        st.binary(max_size=200),
        st.sampled_from(NON_UTF8),
        st.dictionaries(st.sampled_from(sorted(as_dict)), json_values(), max_size=3).map(mutated),
        json_values().map(lambda v: json.dumps(v).encode()),
        st.sampled_from((deep(), deep(opener=b"{", closer=b"}"), deep_object(), deep(500))),
        st.integers(min_value=max_bytes - 2, max_value=max_bytes + 2).map(
            lambda n: (valid[:-1] + b" " * n)[: n - 1] + b"}"
        ),
        st.just(b"x" * (4 * max_bytes)),
    )


keys: st.SearchStrategy[bytes | None] = st.one_of(
    st.none(), st.binary(max_size=64), st.sampled_from(NON_UTF8), st.just(b"k" * 10_000)
)


def record(
    headers: Headers,
    value: bytes | None,
    *,
    key: bytes | None = None,
    topic: str = "t",
    partition: int = 0,
    offset: int = 0,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,  # null values are what aiokafka really hands over
    )


async def produce_raw(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None, Headers]],
    *,
    partition: int | None = None,
) -> list[RecordMetadata | None]:
    """Write (key, value, headers) records as they are, null header values included, in order
    and in as few produce requests as possible; each one's metadata, or None where the broker
    refused it (a topic with a size limit may refuse the biggest)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                # aiokafka sends nothing without a key or a value: an empty body then.
                value if key is not None else (value or b""),
                key=key,
                headers=headers,
                partition=partition,
            )
            for key, value, headers in records
        ]
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await producer.stop()
    return [o if isinstance(o, RecordMetadata) else None for o in outcomes]


def draw(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` generated values, the same ones every run, for tests that can't be @given
    themselves (an async test through a real broker)."""
    drawn: list[T] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]


class _RawName(str):
    """A header name that encodes to bytes that are not UTF-8 (aiokafka only takes str)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@contextlib.contextmanager
def _python_record_builder() -> Iterator[None]:
    """aiokafka's C record builder refuses a str subclass; its Python one calls encode()."""
    saved = accumulator.DefaultRecordBatchBuilder
    for module in (accumulator, producer_module):
        module.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy
    try:
        yield
    finally:
        for module in (accumulator, producer_module):
            module.DefaultRecordBatchBuilder = saved


async def produce_raw_header_names(
    bootstrap: str, topic: str, names: Sequence[bytes], *, partition: int, value: bytes = b"{}"
) -> None:
    """One record per name, each with a header of that (non-UTF-8) name, in one batch."""
    with _python_record_builder():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
        await producer.start()
        try:
            sent = [
                await producer.send(
                    topic, value, partition=partition, headers=[(_RawName(name), b"v")]
                )
                for name in names
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
