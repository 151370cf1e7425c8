"""The audit store. Hash chains and append-only triggers (the audit issue) build on this table."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from moment_messaging.tables import define_messaging_tables
from moment_persistence.naming import service_metadata

metadata = service_metadata()

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    # CloudEvents source + id is unique by the spec: the natural de-duplication key.
    Column("source", String(256), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("actor_role", String(64), nullable=False),
    Column("subject_id", String(128), nullable=False, index=True),
    Column("fields", JSON, nullable=False),
    Column("purpose", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("source_ref", String(80), nullable=True),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source", "event_id", name="uq_audit_records_source_event"),
)

messaging = define_messaging_tables(metadata)
