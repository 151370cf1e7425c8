"""Planted canary values (Arabic and Latin) go through every identity flow; afterwards not one byte
of them is on any topic, in any header, or in any log record."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import inspect, text

from moment_client.errors import ServiceError
from moment_client.identity import IdentityClient
from moment_contracts.identity import RegistrationFields
from moment_persistence.database import Database
from tests.support.kafka import read_all, record_bytes
from tests.support.suite import Suite

TAG = uuid.uuid4().hex[:6]
CANARY = RegistrationFields(
    username=f"canary_{TAG}",
    email=f"canary.{TAG}@example.test",
    password=f"كلمة سر الكناري {TAG} طويلة",
    name=f"كناري مزروع {TAG}",
    age=41,
    recovery_question=f"ما لون طائر الكناري {TAG}؟",
    recovery_answer=f"أصفر فاقع {TAG}",
)
NEW_PASSWORD = f"Canary fresh passphrase {TAG}"
NEW_NAME = f"Latin Canary Name {TAG}"


def canaries() -> list[str]:
    return [
        CANARY.username,
        CANARY.email,
        CANARY.password,
        CANARY.name,
        CANARY.recovery_question,
        CANARY.recovery_answer,
        NEW_PASSWORD,
        NEW_NAME,
    ]


async def exercise_every_flow(client: IdentityClient) -> str:
    accepted = await client.register(CANARY, locale="ar")
    with pytest.raises(ServiceError):
        await client.login(CANARY.username, "wrong password here", source="203.0.113.9")
    _, session = await client.login(CANARY.email, CANARY.password, source="203.0.113.9")
    await client.read(session.token, accepted.subject_id, ["name", "email", "recovery_question"])
    await client.update(session.token, accepted.subject_id, {"name": NEW_NAME})
    await client.export(session.token, accepted.subject_id)
    await client.start_recovery(CANARY.username, source="203.0.113.9")
    await client.answer_recovery(
        CANARY.username, CANARY.recovery_answer, NEW_PASSWORD, source="203.0.113.9"
    )
    return accepted.subject_id


async def all_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def test_no_canary_anywhere(
    suite: Suite, identity_client: IdentityClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await exercise_every_flow(identity_client)
    topics = await all_topics(suite.kafka.bootstrap_servers)
    assert {"identity.commands", "identity.events", "audit.events"} <= set(topics)
    scanned = 0
    for topic in topics:
        records = await read_all(suite.kafka.bootstrap_servers, topic)
        scanned += len(records)
        blob = b"".join(record_bytes(r) for r in records)
        for value in canaries():
            assert value.encode() not in blob, f"a planted value is readable on {topic}"
    assert scanned > 0
    assert caplog.records
    for value in canaries():
        assert value not in caplog.text
    for name, database in (
        ("identity", suite.identity.core.database),
        ("audit", suite.audit.core.database),
    ):
        dump = await database_dump(database)
        for value in canaries():
            assert value.encode() not in dump, f"a planted value is readable in {name}'s database"


async def database_dump(database: Database) -> bytes:
    """Every row of every table, as bytes: what a stolen database would show."""
    chunks: list[bytes] = []
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in names:
            rows = (await connection.execute(text(f'SELECT * FROM "{name}"'))).all()
            for row in rows:
                chunks.extend(v if isinstance(v, bytes) else str(v).encode() for v in row)
    return b"\n".join(chunks)
