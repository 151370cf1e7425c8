"""Consent learns of subjects from identity.events, idempotently."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from moment_consent.adapters.kafka import GROUP_ID as CONSENT_GROUP
from moment_consent.adapters.orm import messaging, subjects
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.identity import UserRegistered
from tests.support.kafka import committed_past
from tests.support.produce import publish
from tests.support.suite import Suite


async def _count(suite: Suite, subject_id: str) -> int:
    async with suite.consent.core.database.sessionmaker() as session:
        query = select(func.count()).where(subjects.c.subject_id == subject_id)
        return int((await session.execute(query)).scalar_one())


async def _processed(suite: Suite, event_id: str) -> bool:
    async with suite.consent.core.database.sessionmaker() as session:
        query = select(func.count()).where(messaging.inbox.c.event_id == event_id)
        return bool((await session.execute(query)).scalar_one())


async def test_a_redelivered_event_is_processed_once(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    event = Envelope.of(
        UserRegistered(
            subject_id=subject_id, status="active", locale="en", registered_at=datetime.now(UTC)
        ),
        source="/moment/identity",
        subject=subject_id,
    )
    sent = await publish(suite.kafka.bootstrap_servers, topics.IDENTITY_EVENTS, event, event, event)
    # Consent commits after handling: once past the last copy, every copy was (not) applied.
    await committed_past(suite.kafka.bootstrap_servers, CONSENT_GROUP, sent)
    assert await _processed(suite, event.id)
    assert await _count(suite, subject_id) == 1
