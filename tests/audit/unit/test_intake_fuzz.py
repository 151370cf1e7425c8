"""Whatever one record of an audit.events poll holds, it is rejected alone with a reason, or
stored; the valid records of the same poll are never harmed (fuzzed in-process; the same shapes
go through a real consumer in tests/audit/integration/test_ingest_poison.py)."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from moment_audit.adapters.intake import check_one, dead_letterable, decode
from moment_audit.service.producers import Producers, UnauthenticatedProducer
from moment_contracts.envelope import Envelope
from moment_contracts.registry import DecodeError
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import classify
from tests.support.audit_events import access
from tests.support.audit_producers import PRODUCERS, TEST_PRODUCER, keys_for, sign
from tests.support.poison_records import (
    NON_UTF8,
    Headers,
    bodies,
    deep,
    deep_object,
    headers_over,
    keys,
    record,
)

CONFIG = KafkaConfig()
SUBJECT = str(uuid.uuid4())
# The tests' producer key, as audit holds it: good records are signed, poison made from them is
# refused for its MAC or for what is wrong with it, alone either way.
GATE = Producers(PRODUCERS, None, keys={TEST_PRODUCER: keys_for("/test/identity")})
GOOD = sign(Envelope.of(access(SUBJECT), source="/test/identity", subject=SUBJECT))
GOOD_HEADERS: Headers = list(GOOD.headers())


def signed_headers(body: bytes) -> Headers:
    """Headers a known producer would send with `body`, whatever the body is."""
    return list(sign(dataclasses.replace(GOOD, data=body, extra={})).headers())


def poll(poison: Headers, value: bytes | None, key: bytes | None) -> tuple:  # type: ignore[type-arg]
    """A poll of a good record, the poison, and another good record, as one consumer gets it."""
    good = [record(GOOD_HEADERS, GOOD.data, key=GOOD.key, offset=n) for n in (0, 2)]
    return (good[0], record(poison, value, key=key, offset=1), good[1])


def assert_poison_alone(records: tuple, started: float) -> None:  # type: ignore[type-arg]
    items, sources, rejected = decode(records, CONFIG, GATE.check)
    assert time.monotonic() - started < 1.0
    offsets = [s.offset for s in sources]
    assert 0 in offsets
    assert 2 in offsets, "the good record after the poison was harmed"
    assert [i.offset for i in items] == offsets
    assert len(items) + len(rejected) == 3
    for dead, why in rejected:
        assert dead.offset == 1
        assert isinstance(why, DecodeError | ValidationError | UnauthenticatedProducer)
        reason, _ = classify(why)
        assert reason in {
            "malformed",
            "schema-violation",
            "unknown-type",
            "oversized",
            "unauthenticated-producer",
        }
        # What the dead-letter topic is handed can be copied whatever the original held.
        assert all(isinstance(v, bytes) for _, v in dead.headers)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    headers=headers_over(GOOD_HEADERS),
    value=bodies(GOOD.data, CONFIG.max_message_bytes),
    key=keys,
)
@example(headers=[*GOOD_HEADERS, ("x-null", None)], value=GOOD.data, key=None)
@example(headers=[*GOOD_HEADERS, ("x-bad", b"\xff")], value=GOOD.data, key=None)
@example(headers=[("ce_id", None), *GOOD_HEADERS[1:]], value=GOOD.data, key=None)
@example(headers=GOOD_HEADERS, value=deep(), key=None)
@example(headers=GOOD_HEADERS, value=deep_object(), key=None)
@example(headers=GOOD_HEADERS[1:], value=GOOD.data, key=None)
@example(headers=[*GOOD_HEADERS, ("ce_specversion", b"0.3")], value=GOOD.data, key=b"\xff")
def test_any_record_is_rejected_alone_or_stored(
    headers: Headers, value: bytes | None, key: bytes | None
) -> None:
    started = time.monotonic()
    assert_poison_alone(poll(headers, value, key), started)


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([*GOOD_HEADERS, ("x-null", None)], GOOD.data, "malformed"),
        ([*GOOD_HEADERS, ("x-bad", NON_UTF8[0])], GOOD.data, "malformed"),
        # Signed by the producer, so the body itself is what gets judged.
        (signed_headers(deep()), deep(), "malformed"),
        (signed_headers(deep_object()), deep_object(), "malformed"),
        (GOOD_HEADERS, deep(), "unauthenticated-producer"),
        (GOOD_HEADERS, b"[" * (CONFIG.max_message_bytes + 1), "oversized"),
    ],
    ids=[
        "null-header",
        "non-utf8-header",
        "deep-array",
        "deep-object",
        "unsigned-deep",
        "oversized",
    ],
)
def test_the_attacks_seen_are_rejected_with_their_reason_and_bounded_memory(
    headers: Headers, value: bytes, reason: str
) -> None:
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises((DecodeError, ValidationError, UnauthenticatedProducer)) as caught:
            check_one(record(headers, value), CONFIG.max_message_bytes, GATE.check)
        assert time.monotonic() - started < 1.0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert classify(caught.value)[0] == reason
    assert peak < 32 * 1024 * 1024, f"checking one record took {peak} bytes"


@given(st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=5))
def test_a_dead_letter_copy_keeps_the_body_and_key_and_has_only_bytes_headers(
    headers: Headers,
) -> None:
    original = record(headers, b"body", key=b"key")
    copy = dead_letterable(original)
    assert (copy.value, copy.key, copy.offset) == (b"body", b"key", original.offset)
    assert [n for n, _ in copy.headers] == [n for n, _ in headers]
    assert all(isinstance(v, bytes) for _, v in copy.headers)
