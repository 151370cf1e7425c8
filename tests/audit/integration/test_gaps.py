"""Through the running suite: a producer's sequence with a hole in it raises a gap alert on
audit.alerts once the hole has outlived the grace period, on the watch's timer, with no further
record arriving; a late number is no gap; a repeated number raises one alert."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.orm import audit_records
from moment_audit.bootstrap import AuditService
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.envelope import Envelope
from tests.support.audit_producers import sign
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.produce import publish
from tests.support.suite import Suite

# Long enough that numbers published together but stored in separate polls of a busy machine
# are still within it (a late number must not be called a gap), short enough to wait out.
GRACE_S = 10.0
SWEEP_S = 0.2
# A wrong alert would come one sweep after the grace period: wait that, with room for a busy
# machine's slow sweeps, before concluding there is none.
SETTLE_S = GRACE_S + 25 * SWEEP_S


def numbered(source: str, seq: int) -> Envelope:
    # One subject, so one partition: the records reach audit in the order they were sent.
    subject_id = str(uuid.uuid5(uuid.NAMESPACE_URL, source))
    event = PersonalDataAccessed(
        action="read",
        actor_id="staff-gaps",
        actor_role="support-operator",
        subject_id=subject_id,
        fields=("email",),
        purpose="user-dealings",
        outcome="success",
        occurred_at=datetime.now(UTC),
        producer_seq=seq,
    )
    return sign(Envelope.of(event, source=source, subject=subject_id))


@pytest.fixture
async def short_grace(suite: Suite) -> AsyncIterator[None]:
    assert isinstance(suite.audit, AuditService)
    watch = suite.audit.watch
    before = watch.grace, watch.config
    watch.grace = timedelta(seconds=GRACE_S)
    watch.config = watch.config.model_copy(update={"sweep_seconds": SWEEP_S})
    # It may be waiting out the default period: from now on, the short one.
    watch.wake()
    yield
    watch.grace, watch.config = before


async def stored_numbers(suite: Suite, source: str, count: int) -> None:
    """Once all are stored, only the watch could still raise an alert for them."""
    await stored_audit(
        suite,
        audit_records.c.source == source,
        audit_records.c.producer_seq.is_not(None),
        expect=count,
    )


def gap_alerts(producer: str) -> object:
    def matches(record: ConsumerRecord[bytes, bytes]) -> bool:
        alert = json.loads(record.value or b"{}")
        return bool(alert.get("rule") == "gap" and producer in alert.get("detail", ""))

    return matches


@pytest.mark.usefixtures("short_grace")
async def test_a_number_that_never_arrives_raises_a_gap_alert(suite: Suite) -> None:
    name = f"test:gaps-{uuid.uuid4().hex}"
    source = "/" + name.replace(":", "/")
    bootstrap = suite.kafka.bootstrap_servers
    await publish(bootstrap, topics.AUDIT_EVENTS, *(numbered(source, n) for n in (1, 2, 4)))
    # Nothing else is sent: the watch's timer alone turns the hole into an alert.
    [alert] = await read_topic(bootstrap, topics.AUDIT_ALERTS, where=gap_alerts(name))
    body = json.loads(alert.value or b"{}")
    assert (body["severity"], body["count"]) == ("high", 1)
    assert "expected 3, got 4 (1 missing)" in body["detail"]
    assert header(alert, "ce_id") == body["alert_id"]
    # A second alert would come at a later sweep: several pass in the settle period.
    await asyncio.sleep(SETTLE_S)
    again = await read_topic(bootstrap, topics.AUDIT_ALERTS, timeout_s=1, where=gap_alerts(name))
    assert len(again) == 1, "a gap is alerted once"


@pytest.mark.usefixtures("short_grace")
async def test_a_late_number_within_the_grace_period_is_no_gap(suite: Suite) -> None:
    name = f"test:late-{uuid.uuid4().hex}"
    source = "/" + name.replace(":", "/")
    bootstrap = suite.kafka.bootstrap_servers
    await publish(bootstrap, topics.AUDIT_EVENTS, *(numbered(source, n) for n in (1, 3, 2, 4)))
    await stored_numbers(suite, source, 4)
    alerts = await read_topic(
        bootstrap, topics.AUDIT_ALERTS, timeout_s=SETTLE_S, where=gap_alerts(name)
    )
    assert alerts == []


@pytest.mark.usefixtures("short_grace")
async def test_a_repeated_number_raises_an_alert(suite: Suite) -> None:
    name = f"test:dup-{uuid.uuid4().hex}"
    source = "/" + name.replace(":", "/")
    bootstrap = suite.kafka.bootstrap_servers
    await publish(bootstrap, topics.AUDIT_EVENTS, numbered(source, 1), numbered(source, 2))
    await publish(bootstrap, topics.AUDIT_EVENTS, numbered(source, 1))
    [alert] = await read_topic(bootstrap, topics.AUDIT_ALERTS, where=gap_alerts(name))
    body = json.loads(alert.value or b"{}")
    assert body["severity"] == "medium"
    assert body["detail"].endswith(": 1 repeated (2 records)")
