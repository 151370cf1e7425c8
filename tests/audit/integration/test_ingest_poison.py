"""Poison on audit.events, through the real consumer: each poison record goes to the DLQ alone
with its reason, and the valid events of the same poll are stored (generated records, fewer than
the in-process fuzzing of tests/audit/unit/test_intake_fuzz.py)."""

from __future__ import annotations

import resource
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, RecordMetadata
from hypothesis import strategies as st

from moment_audit.adapters.orm import audit_records
from moment_contracts import topics
from moment_contracts.envelope import REPLY_TO, Envelope
from moment_contracts.topics import dlq, reply_topic
from moment_messaging.config import KafkaConfig
from tests.support.audit_events import access
from tests.support.audit_producers import sign
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.poison_records import (
    Headers,
    bodies,
    deep,
    deep_object,
    draw,
    headers_over,
    keys,
    produce_raw,
)
from tests.support.suite import Suite

LIMIT = KafkaConfig().max_message_bytes
Raw = tuple[bytes | None, bytes | None, Headers]


def good(subject_id: str) -> Envelope:
    return sign(Envelope.of(access(subject_id), source="/test/identity", subject=subject_id))


def as_raw(envelope: Envelope) -> Raw:
    return envelope.key, envelope.data, list(envelope.headers())


def seen_attacks(template: Envelope) -> list[Raw]:
    headers: Headers = list(template.headers())
    # A fresh ce_id each, so a poison that happens to be valid is stored under its own id.
    fresh = [("ce_id", str(uuid.uuid4()).encode()), *headers[1:]]
    return [
        (None, template.data, [*fresh, ("x-null", None)]),
        (None, template.data, [*fresh, ("x-bad", b"\xff\xfe")]),
        (None, template.data, [("ce_id", None), *headers[1:]]),
        (None, deep(), fresh),
        (None, deep_object(), fresh),
        (None, b"[" * (LIMIT + 1), fresh),
        (b"\xff" * 100, None, fresh),
    ]


def generated(template: Envelope, count: int) -> list[Raw]:
    headers: Headers = list(template.headers())
    strategy = st.tuples(keys, bodies(template.data, LIMIT), headers_over(headers[1:]))
    return [
        (key, value, [("ce_id", str(uuid.uuid4()).encode()), *extra])
        for key, value, extra in draw(strategy, count)
    ]


async def assert_dead_lettered_alone(
    suite: Suite, poison: list[tuple[Raw, RecordMetadata | None]]
) -> None:
    """Each poison that reached the topic is in the DLQ with a reason of its own, or was valid
    after all and stored; none went there as a whole batch's `handler-error`."""
    arrived = {(m.partition, m.offset): raw for raw, m in poison if m is not None}

    def original(r: ConsumerRecord[bytes, bytes]) -> tuple[int, int] | None:
        where = (
            int(header(r, "dlq_original_partition") or -1),
            int(header(r, "dlq_original_offset") or -1),
        )
        return where if where in arrived else None

    stored_ids = set()
    for _key, _value, headers in arrived.values():
        ce_id = dict(headers).get("ce_id")
        if ce_id:
            stored_ids.add(ce_id.decode(errors="replace"))
    stored = await stored_audit(suite, audit_records.c.event_id.in_(stored_ids), expect=0)
    dead = await read_topic(
        suite.kafka.bootstrap_servers,
        dlq(topics.AUDIT_EVENTS),
        expect=len(arrived) - len(stored),
        timeout_s=60,
        where=original,
    )
    assert len({original(r) for r in dead}) + len(stored) == len(arrived)
    reasons = {header(r, "dlq_reason") for r in dead}
    assert reasons <= {
        "malformed",
        "schema-violation",
        "unknown-type",
        "oversized",
        "unauthenticated-producer",
    }, reasons


async def run_poll(suite: Suite, poison: list[Raw]) -> None:
    """good, poison..., good on one partition in one produce request: most likely one poll."""
    subject_id = str(uuid.uuid4())
    first, last = good(subject_id), good(subject_id)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sent = await produce_raw(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_EVENTS,
        [as_raw(first), *poison, as_raw(last)],
        partition=0,
    )
    rows = await stored_audit(suite, audit_records.c.subject_id == subject_id, expect=2)
    assert [r["event_id"] for r in rows] == [first.id, last.id]
    await assert_dead_lettered_alone(suite, list(zip(poison, sent[1:-1], strict=True)))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 200 * 1024, f"the test process grew by {grown_kib} KiB"


async def test_the_attacks_seen_are_dead_lettered_alone_and_their_poll_stored(
    suite: Suite,
) -> None:
    # A refusal is answered to a reply_to, but never by creating the topic it names.
    missing = reply_topic(uuid.uuid4().hex)
    template = good(str(uuid.uuid4()))
    asks_reply: Raw = (None, b"{not json", [*template.headers(), (REPLY_TO, missing.encode())])
    await run_poll(suite, [*seen_attacks(template), asks_reply])
    admin = AIOKafkaAdminClient(bootstrap_servers=suite.kafka.bootstrap_servers)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()


async def test_generated_poison_is_dead_lettered_alone_and_their_poll_stored(
    suite: Suite,
) -> None:
    await run_poll(suite, generated(good(str(uuid.uuid4())), 25))
