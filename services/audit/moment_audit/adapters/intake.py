"""Checking each record of an audit.events poll on its own, whatever arrives.

A poll holds up to `INGEST_BATCH` records from anyone who can write to the topic. Whatever one of
them holds (null or non-UTF-8 headers, a body nested 100k levels deep, a type the envelope code
never expected), its failure must be its own: it is rejected with a reason and goes to the
dead-letter topic alone, and the valid records of the same poll are stored. So nothing a check
raises while decoding one record may escape the loop over the poll.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from moment_audit.service.ingest import Incoming
from moment_audit.service.producers import UnauthenticatedProducer
from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.catalogue import TOPIC_MESSAGES
from moment_contracts.registry import DecodeError, MalformedMessage
from moment_messaging.config import KafkaConfig
from moment_messaging.deadletter import check_envelope, validate_body

Record: TypeAlias = "ConsumerRecord[Any, Any]"
Rejected: TypeAlias = "list[tuple[Record, BaseException]]"
# Proves a known producer wrote the record (ProducerGate.check); raises UnauthenticatedProducer.
ProducerCheck: TypeAlias = "Callable[[Record], None]"

ACCEPTED = frozenset(m.ce_type for m in TOPIC_MESSAGES[topics.AUDIT_EVENTS])


def check_one(record: Record, max_bytes: int, proven: ProducerCheck) -> Incoming:
    """One record as an event to store; raises DecodeError, ValidationError or
    UnauthenticatedProducer, nothing else. The producer is proven before the body is parsed."""
    try:
        envelope = check_envelope(record, ACCEPTED, max_bytes)
        proven(record)
        # check_record's JSON check and the schema's in one parse of the body.
        event = validate_body(PersonalDataAccessed, envelope)
    except (DecodeError, ValidationError, UnauthenticatedProducer):
        raise
    except RecursionError:
        # json's parser recurses once per level: a deeply nested body exhausts the stack.
        raise MalformedMessage("the body nests too deeply to be parsed") from None
    except Exception as exc:  # noqa: BLE001 - any failure here is this one record's
        raise MalformedMessage(_unreadable(record, exc)) from None
    return Incoming(envelope, event, record.partition, record.offset)


def _unreadable(record: Record, exc: Exception) -> str:
    if any(value is None for _, value in record.headers or ()):
        return "a header value is null"
    return f"the record could not be read ({type(exc).__name__})"


def decode(
    records: tuple[Record, ...], config: KafkaConfig, proven: ProducerCheck
) -> tuple[list[Incoming], list[Record], Rejected]:
    """The events that pass every check, the records they came from, and the others with why."""
    items: list[Incoming] = []
    sources: list[Record] = []
    rejected: Rejected = []
    for record in records:
        try:
            items.append(check_one(record, config.max_message_bytes, proven))
        except (DecodeError, ValidationError, UnauthenticatedProducer) as exc:
            rejected.append((dead_letterable(record), exc))
            continue
        sources.append(record)
    return items, sources, rejected


def dead_letterable(record: Record) -> Record:
    """The record as the dead-letter topic can hold it: a header value that is not bytes (a null
    one, say) becomes empty, so copying the headers can't fail and take the poll's other
    rejections with it. The key and body travel unchanged."""
    headers = list(record.headers or ())
    if all(isinstance(name, str) and isinstance(value, bytes) for name, value in headers):
        return record
    cleaned = tuple(
        (str(name), value if isinstance(value, bytes) else b"") for name, value in headers
    )
    return dataclasses.replace(record, headers=cleaned)
