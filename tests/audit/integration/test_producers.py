"""Writing the audit trail as an attacker with write access to audit.events: forged sources,
identity's source without or with a wrong MAC, signed records altered or replayed under a new id.
Each is dead-lettered alone as `unauthenticated-producer`, never stored, valid records of the same
poll are stored, and a flood raises one `forged-producer` alert. Identity's own events, in both
delivery modes, carry its MAC and are stored."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import uuid
from collections.abc import Sequence

import hvac
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.orm import audit_records
from moment_audit.bootstrap import AuditService
from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.envelope import Envelope
from moment_contracts.topics import dlq
from moment_crypto.keysets import VersionedKeys
from moment_crypto.producer_mac import KID_HEADER, MAC_HEADER
from moment_devstack.vault_bootstrap import AUDIT_PRODUCERS_PATH, KV_MOUNT
from moment_identity.service.unit_of_work import SOURCE as IDENTITY
from tests.identity.integration.test_login import register
from tests.identity.integration.test_reads import audit_rows, broker_ack_audit, customer_token
from tests.support import audit_producers
from tests.support.audit_events import access
from tests.support.audit_producers import sign
from tests.support.audit_store import stored_audit
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite

REFUSED = "unauthenticated-producer"
# What the consumer had time to store had it accepted them: a refusal is not a slow ingest.
SETTLE_S = 3.0

Headers = list[tuple[str, bytes]]


def event(source: str = IDENTITY, subject_id: str | None = None) -> Envelope:
    subject = subject_id or str(uuid.uuid4())
    return Envelope.of(access(subject), source=source, subject=subject)


def altered(envelope: Envelope, **headers: bytes) -> tuple[Headers, bytes]:
    """A signed envelope's headers with some replaced after signing."""
    return [(n, headers.get(n, v)) for n, v in envelope.headers()], envelope.data


async def send_together(bootstrap: str, *records: tuple[Headers, bytes, bytes | None]) -> None:
    """One produce request, so the consumer most likely takes them in one poll."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(topics.AUDIT_EVENTS, value, key=key, headers=headers)
            for headers, value, key in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def raw(envelope: Envelope) -> tuple[Headers, bytes, bytes | None]:
    return envelope.headers(), envelope.data, envelope.key


async def dead_letters(suite: Suite, ids: Sequence[str]) -> dict[str, str | None]:
    wanted = set(ids)
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        dlq(topics.AUDIT_EVENTS),
        expect=len(wanted),
        where=lambda r: header(r, "ce_id") in wanted,
    )
    return {str(header(r, "ce_id")): header(r, "dlq_reason") for r in records}


async def stored_ids(suite: Suite, ids: Sequence[str]) -> list[str]:
    rows = await stored_audit(suite, audit_records.c.event_id.in_(list(ids)), expect=0)
    return [str(r["event_id"]) for r in rows]


def forged_alerts(source: str) -> object:
    def matches(record: ConsumerRecord[bytes, bytes]) -> bool:
        alert = json.loads(record.value or b"{}")
        return bool(alert.get("rule") == "forged-producer" and alert.get("source_ref") == source)

    return matches


async def test_a_flood_from_a_made_up_source_is_dead_lettered_and_alerted_once(
    suite: Suite,
) -> None:
    source = f"/attacker/{uuid.uuid4().hex}"
    flood = [event(source) for _ in range(20)]
    bootstrap = suite.kafka.bootstrap_servers
    await send_together(bootstrap, *(raw(e) for e in flood[:10]))
    await send_together(bootstrap, *(raw(e) for e in flood[10:]))
    ids = [e.id for e in flood]
    assert await dead_letters(suite, ids) == dict.fromkeys(ids, REFUSED)
    [alert] = await read_topic(bootstrap, topics.AUDIT_ALERTS, where=forged_alerts(source))
    body = json.loads(alert.value or b"{}")
    assert (body["severity"], body["window_s"]) == ("high", 300)
    assert "unknown-producer" in body["detail"]
    assert header(alert, "ce_id") == body["alert_id"]
    await asyncio.sleep(SETTLE_S)
    # Waits out its whole deadline (a second alert is what it looks for), so it sees them all.
    again = await read_topic(
        bootstrap, topics.AUDIT_ALERTS, expect=2, timeout_s=10, where=forged_alerts(source)
    )
    assert len(again) == 1, "a flood from one source raises one alert per window"
    assert await stored_ids(suite, ids) == []


async def test_identitys_source_without_a_mac_or_with_a_wrong_key_is_refused(
    suite: Suite,
) -> None:
    bare = event()
    stripped = event()
    wrong = sign(event(), VersionedKeys(current="v1", keys={"v1": os.urandom(32)}))
    unknown_kid = sign(event())
    signed_stripped = sign(stripped)
    records = [
        raw(bare),
        ([h for h in signed_stripped.headers() if h[0] != MAC_HEADER], stripped.data, None),
        raw(wrong),
        (*altered(unknown_kid, **{KID_HEADER: b"v99"}), None),
    ]
    await send_together(suite.kafka.bootstrap_servers, *records)
    ids = [bare.id, stripped.id, wrong.id, unknown_kid.id]
    assert await dead_letters(suite, ids) == dict.fromkeys(ids, REFUSED)
    await asyncio.sleep(SETTLE_S)
    assert await stored_ids(suite, ids) == []


async def test_a_signed_event_altered_or_replayed_under_a_new_id_is_refused(
    suite: Suite,
) -> None:
    """Each covered attribute and the body, changed after identity signed, sent before the
    untouched original in one poll: every altered copy is dead-lettered (not taken as the
    original, nor dropped as its duplicate), and the original is stored as it was signed."""
    original = sign(event())
    body = json.loads(original.data)
    altered_copies: list[tuple[Headers, bytes]] = [
        (original.headers(), json.dumps({**body, "actor_id": "someone-else"}).encode()),
        altered(original, ce_subject=str(uuid.uuid4()).encode()),
        altered(original, ce_time=b"2020-01-01T00:00:00Z"),
        altered(original, ce_dataschema=b"https://example.test/other.json"),
        altered(original, ce_specversion=b"1.0 "),
    ]
    moved = altered(original, ce_source=b"/test/identity")
    # The body and MAC as they were, under ids of the attacker's choosing.
    replays = [str(uuid.uuid4()) for _ in range(2)]
    records = [(h, d, original.key) for h, d in [*altered_copies, moved]]
    records += [(*altered(original, ce_id=i.encode()), original.key) for i in replays]
    await send_together(suite.kafka.bootstrap_servers, *records, raw(original))
    dead = await read_topic(
        suite.kafka.bootstrap_servers,
        dlq(topics.AUDIT_EVENTS),
        expect=len(records),
        where=lambda r: header(r, "ce_id") in {original.id, *replays},
    )
    assert len(dead) == len(records)
    assert {header(r, "dlq_reason") for r in dead} <= {REFUSED, "malformed"}
    assert sum(header(r, "dlq_reason") == REFUSED for r in dead) >= len(records) - 1
    stored = await stored_audit(suite, audit_records.c.event_id == original.id, expect=1)
    assert [(r["source"], r["actor_id"]) for r in stored] == [(IDENTITY, "staff-1")]
    await asyncio.sleep(SETTLE_S)
    assert await stored_ids(suite, replays) == []
    again = await stored_audit(suite, audit_records.c.event_id == original.id, expect=2, attempts=1)
    assert len(again) == 1, "the copy moved to another source was not stored either"


async def test_a_type_changed_after_signing_is_refused(suite: Suite) -> None:
    original = sign(event())
    headers, data = altered(original, ce_type=b"moment.audit.personal-data-accessed.v2")
    await send_together(suite.kafka.bootstrap_servers, (headers, data, original.key))
    # Only one type is accepted on audit.events: any other is refused before the MAC is read.
    assert (await dead_letters(suite, [original.id]))[original.id] in {REFUSED, "unknown-type"}


async def test_forged_and_valid_records_in_one_poll(suite: Suite) -> None:
    subject_id = str(uuid.uuid4())
    valid = [sign(event(IDENTITY, subject_id)), sign(event(f"/test/{uuid.uuid4().hex}"))]
    forged = [event(IDENTITY, subject_id), event(f"/forged/{uuid.uuid4().hex}", subject_id)]
    order = [forged[0], valid[0], forged[1], valid[1]]
    await send_together(suite.kafka.bootstrap_servers, *(raw(e) for e in order))
    rows = await stored_audit(
        suite, audit_records.c.event_id.in_([e.id for e in valid]), expect=len(valid)
    )
    assert sorted(str(r["event_id"]) for r in rows) == sorted(e.id for e in valid)
    ids = [e.id for e in forged]
    assert await dead_letters(suite, ids) == dict.fromkeys(ids, REFUSED)
    assert await stored_ids(suite, ids) == []


async def identity_headers(suite: Suite, subject_id: str) -> list[dict[str, str | None]]:
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_EVENTS,
        where=lambda r: header(r, "ce_subject") == subject_id,
    )
    return [{n: header(r, n) for n in ("ce_source", KID_HEADER, MAC_HEADER)} for r in records]


async def test_identitys_own_events_carry_its_mac_and_are_stored_in_both_modes(
    suite: Suite, identity_client: IdentityClient
) -> None:
    for mode in ("outbox", "broker"):
        subject_id, tag = await register(identity_client)
        token = await customer_token(identity_client, tag)
        if mode == "broker":
            async with broker_ack_audit(suite, suite.kafka.bootstrap_servers):
                await identity_client.read(token, subject_id, ["username"])
        else:
            await identity_client.read(token, subject_id, ["username"])
        assert [r["outcome"] for r in await audit_rows(suite, subject_id, expect=1)] == [
            "success"
        ], mode
        for found in await identity_headers(suite, subject_id):
            assert found["ce_source"] == IDENTITY
            assert found[KID_HEADER] == "v1", mode
            assert len(found[MAC_HEADER] or "") == 64, mode


async def test_a_rotated_key_is_taken_up_at_refresh_and_the_old_one_still_verifies(
    suite: Suite, vault_root: hvac.Client
) -> None:
    """Rotation as docs/audit.md describes it: a new version is added to the producer's key set
    in Vault; once audit has reloaded, events signed with it are stored, and so are those signed
    with the version before; a version audit has not loaded is refused."""
    assert isinstance(suite.audit, AuditService)
    current = audit_producers.keys_for("/test/")
    new_key = os.urandom(32)
    rotated = {
        "current": "v2",
        **{label: base64.b64encode(key).decode() for label, key in current.keys.items()},
        "v2": base64.b64encode(new_key).decode(),
    }
    vault_root.secrets.kv.v2.create_or_update_secret(
        path=f"{AUDIT_PRODUCERS_PATH}/{audit_producers.TEST_PRODUCER}",
        secret=rotated,
        mount_point=KV_MOUNT,
    )
    early = sign(event(f"/test/{uuid.uuid4().hex}"), VersionedKeys("v2", {"v2": new_key}))
    await send_together(suite.kafka.bootstrap_servers, raw(early))
    assert await dead_letters(suite, [early.id]) == {early.id: REFUSED}, "not loaded yet"
    await suite.audit.gate.producers.load()
    newer = sign(event(f"/test/{uuid.uuid4().hex}"), VersionedKeys("v2", {"v2": new_key}))
    older = sign(event(f"/test/{uuid.uuid4().hex}"))
    ahead = sign(event(f"/test/{uuid.uuid4().hex}"), VersionedKeys("v3", {"v3": new_key}))
    await send_together(suite.kafka.bootstrap_servers, raw(newer), raw(older), raw(ahead))
    rows = await stored_audit(suite, audit_records.c.event_id.in_([newer.id, older.id]), expect=2)
    assert sorted(str(r["event_id"]) for r in rows) == sorted([newer.id, older.id])
    assert await dead_letters(suite, [ahead.id]) == {ahead.id: REFUSED}


async def test_unproven_records_refused_for_other_reasons_are_alerted_too(suite: Suite) -> None:
    """Not a CloudEvent, or of a type audit does not take: dead-lettered with that reason, and,
    carrying no producer's MAC, alerted as forged; a signed record the schema refuses is not."""
    source = f"/attacker/{uuid.uuid4().hex}"
    other_type = dataclasses.replace(event(source), type="moment.audit.something-else.v1")
    no_type = [(n, v) for n, v in event(source).headers() if n != "ce_type"]
    honest = f"/test/{uuid.uuid4().hex}"
    bad_schema = sign(dataclasses.replace(event(honest), data=b'{"action": "read"}'))
    bootstrap = suite.kafka.bootstrap_servers
    await send_together(bootstrap, raw(other_type), (no_type, b"{}", None), raw(bad_schema))
    reasons = await dead_letters(suite, [other_type.id, bad_schema.id])
    assert reasons == {other_type.id: "unknown-type", bad_schema.id: "schema-violation"}
    [alert] = await read_topic(bootstrap, topics.AUDIT_ALERTS, where=forged_alerts(source))
    detail = json.loads(alert.value or b"{}")["detail"]
    assert "unproven-unknown-type" in detail
    assert "unproven-malformed" in detail
    quiet = await read_topic(
        bootstrap, topics.AUDIT_ALERTS, timeout_s=10, where=forged_alerts(honest)
    )
    assert quiet == []
