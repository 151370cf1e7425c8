"""The foundation's vertical slice, end to end on real Tansu, OpenBao and PostgreSQL.

A storefront client registers a user through request/reply; identity stores the fields encrypted;
UserRegistered reaches identity.events through the outbox; the audit event reaches the audit
service and is stored; one trace id runs through every hop; no personal value is on any topic.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry import trace
from sqlalchemy import select

from moment_audit.adapters.orm import audit_records
from moment_client.identity import IdentityClient
from moment_consent.adapters.orm import subjects
from moment_contracts import topics
from moment_contracts.identity import RegistrationFields
from moment_identity.adapters.orm import users
from tests.support.kafka import header, read_all, read_topic, record_bytes
from tests.support.suite import Suite
from tests.support.waiting import DEADLINE_S

CANARY = RegistrationFields(
    username="canary_user_7f3a",
    email="canary.7f3a@example.test",
    password="correct horse battery staple 7f3a",
    name="كناري اختبار سبعة",
    age=34,
    recovery_question="ما اسم أول مدرسة كناري؟",
    recovery_answer="مدرسة الكناري ٧ف٣",
)
CANARY_VALUES = [
    CANARY.username,
    CANARY.email,
    CANARY.password,
    CANARY.name,
    CANARY.recovery_question,
    CANARY.recovery_answer,
]


async def _poll(query, database, *, timeout_s: float = DEADLINE_S):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with database.sessionmaker() as session:
            rows = (await session.execute(query)).mappings().all()
        if rows or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def test_register_flows_through_every_hop_with_one_trace(
    suite: Suite, identity_client: IdentityClient
) -> None:
    tracer = trace.get_tracer("storefront-test")
    with tracer.start_as_current_span("storefront checkout") as span:
        accepted = await identity_client.register(CANARY, locale="ar")
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert accepted.status == "active"
    subject = accepted.subject_id

    events = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.IDENTITY_EVENTS,
        where=lambda r: header(r, "ce_subject") == subject,
    )
    assert len(events) == 1
    event = events[0]
    assert header(event, "ce_type") == "moment.identity.user-registered.v1"
    assert header(event, "ce_specversion") == "1.0"
    assert event.key == subject.encode()
    assert (header(event, "traceparent") or "").split("-")[1] == trace_id

    stored = await _poll(
        select(audit_records).where(audit_records.c.subject_id == subject),
        suite.audit.core.database,
    )
    assert len(stored) == 1
    assert stored[0]["trace_id"] == trace_id
    assert stored[0]["action"] == "create"
    assert "email" in stored[0]["fields"]

    known = await _poll(
        select(subjects).where(subjects.c.subject_id == subject), suite.consent.core.database
    )
    assert [row["status"] for row in known] == ["active"]

    async with suite.identity.core.database.sessionmaker() as session:
        row = (await session.execute(select(users).where(users.c.subject_id == subject))).one()
    raw = repr(tuple(row)).encode() + b"".join(v for v in row if isinstance(v, bytes))
    for value in CANARY_VALUES:
        assert value.encode() not in raw, "personal data must be stored encrypted"


async def test_no_personal_value_on_any_topic_or_in_the_logs(
    suite: Suite, identity_client: IdentityClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fields = CANARY.model_copy(
        update={"username": "canary_two_7f3a", "email": "two.7f3a@example.test"}
    )
    await identity_client.register(fields, locale="en")
    for topic in (topics.IDENTITY_COMMANDS, topics.IDENTITY_EVENTS, topics.AUDIT_EVENTS):
        records = await read_all(suite.kafka.bootstrap_servers, topic)
        assert records, topic
        blob = b"".join(record_bytes(r) for r in records)
        for value in [*CANARY_VALUES, fields.username, fields.email]:
            assert value.encode() not in blob, f"plaintext found on {topic}"
    assert caplog.records, "the services log while they work"
    for value in [*CANARY_VALUES, fields.username, fields.email]:
        assert value not in caplog.text
