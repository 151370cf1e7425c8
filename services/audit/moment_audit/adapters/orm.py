"""The audit store: append-only records chained per Kafka partition, chain heads and checkpoints.

`audit_records` and `audit_checkpoints` are append-only: migration 0003 adds triggers that reject
UPDATE and DELETE on both PostgreSQL and SQLite, and revokes both from PUBLIC on PostgreSQL.
Production runs the service under a database role granted only SELECT and INSERT on them (and
SELECT, INSERT, UPDATE on `audit_chain_heads`, which verify never trusts). Retention pruning
(a later slice) will need a separate, audited path around the triggers.
"""

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
    # The hash chain: one per partition of audit.events, so ingest scales with partitions.
    Column("chain_partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    UniqueConstraint("source", "event_id", name="uq_audit_records_source_event"),
    UniqueConstraint("chain_partition", "seq", name="uq_audit_records_chain_seq"),
)

# Derived, for speed: the last link per partition, locked while a record extends it.
audit_chain_heads = Table(
    "audit_chain_heads",
    metadata,
    Column("chain_partition", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("chain_partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("signature", String(256), nullable=False),
    UniqueConstraint("chain_partition", "seq", name="uq_audit_checkpoints_chain_seq"),
)

messaging = define_messaging_tables(metadata)
