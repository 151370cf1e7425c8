"""Every stored record reaches the security team's streams: OCSF on audit.ocsf, alerts on
audit.alerts, through the audit service's outbox."""

from __future__ import annotations

import json
import uuid

from moment_contracts import topics
from moment_contracts.envelope import Envelope
from tests.support.audit_events import access
from tests.support.audit_producers import signed
from tests.support.kafka import header, read_topic
from tests.support.produce import publish
from tests.support.suite import Suite


async def test_each_record_is_published_in_ocsf(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    event = Envelope.of(
        access(subject_id, actor_id="staff-streams"), source="/test/identity", subject=subject_id
    )
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *signed(event, event))
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_OCSF,
        where=lambda r: header(r, "ce_subject") == subject_id,
    )
    assert len(records) == 1, "a redelivered record is stored, and streamed, once"
    ocsf = json.loads(records[0].value or b"{}")
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["type_uid"]) == (6003, 2, 600302)
    assert ocsf["metadata"]["uid"] == event.id
    assert header(records[0], "ce_type") == "moment.audit.ocsf-event.v1"


async def test_a_denied_access_raises_an_alert(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    event = Envelope.of(
        access(subject_id, "denied", actor_id="staff-streams"),
        source="/test/identity",
        subject=subject_id,
    )
    await publish(suite.kafka.bootstrap_servers, topics.AUDIT_EVENTS, *signed(event))
    alerts = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_ALERTS,
        where=lambda r: header(r, "ce_subject") == subject_id,
    )
    assert len(alerts) == 1
    alert = json.loads(alerts[0].value or b"{}")
    assert alert["rule"] == "policy-violation"
    assert alert["actor_id"] == "staff-streams"
