"""Identity numbers its audit events 1, 2, 3... so audit can tell when one goes missing."""

from __future__ import annotations

import json
import uuid

from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from moment_client.identity import IdentityClient
from moment_contracts import topics
from moment_contracts.identity import RegistrationFields
from moment_identity.adapters.orm import producer_sequences
from moment_identity.service.unit_of_work import SOURCE
from tests.support.kafka import header, read_topic
from tests.support.suite import Suite


def fields(tag: str) -> RegistrationFields:
    return RegistrationFields.model_validate(
        {
            "username": f"seq_{tag}",
            "email": f"seq_{tag}@example.test",
            "password": "a long enough passphrase",
            "name": "Sami Test",
            "age": 30,
            "recovery_question": "First school?",
            "recovery_answer": "Al Noor",
        }
    )


def seq_of(record: ConsumerRecord[bytes, bytes]) -> int | None:
    # Other tests put poison records on audit.events under identity's source; they carry no seq.
    try:
        value = json.loads(record.value or b"{}").get("producer_seq")
    except ValueError:
        return None
    return int(value) if value is not None else None


async def last_taken(suite: Suite) -> int:
    async with suite.identity.core.database.sessionmaker() as session:
        query = select(producer_sequences.c.value).where(producer_sequences.c.name == SOURCE)
        return int((await session.execute(query)).scalar_one())


async def test_audit_events_carry_a_gapless_increasing_sequence(
    suite: Suite, identity_client: IdentityClient
) -> None:
    subjects = [
        (await identity_client.register(fields(uuid.uuid4().hex[:8]))).subject_id for _ in range(3)
    ]
    taken = await last_taken(suite)
    records = await read_topic(
        suite.kafka.bootstrap_servers,
        topics.AUDIT_EVENTS,
        expect=taken,
        where=lambda r: header(r, "ce_source") == SOURCE and seq_of(r) is not None,
    )
    ours = {header(r, "ce_subject"): seq_of(r) for r in records}
    seqs = [ours[s] or 0 for s in subjects]
    assert seqs == sorted(seqs), "registered one after another, numbered one after another"
    stamped = sorted(seq_of(r) or 0 for r in records)
    assert stamped == list(range(1, taken + 1)), "every number once: no hole, no repeat"
