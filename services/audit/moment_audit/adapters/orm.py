"""The audit store: append-only records chained per Kafka partition, chain heads and checkpoints.

Each record stores `document`, the canonical JSON its `record_hash` covers, and the columns that
queries read (source, subject_id, occurred_at, seq, ...). A CHECK constraint makes the database
refuse a row whose columns disagree with its document (adapters/agreement.py), so a column cannot
say anything the hashed document does not, and verify hashes stored bytes only. `verify` also
checks that the constraint is still in place and unchanged (a DBA could drop it).

`audit_records` and `audit_checkpoints` are append-only: triggers (migrations 0003 and 0004)
reject UPDATE and DELETE on both PostgreSQL and SQLite (and TRUNCATE on PostgreSQL), and PUBLIC
loses both on PostgreSQL. Production runs the service under a database role granted only SELECT
and INSERT on them (and SELECT, INSERT, UPDATE on `audit_chain_heads`, which verify never trusts).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from moment_audit.adapters.agreement import CONSTRAINT, DocumentAgreement
from moment_messaging.tables import define_messaging_tables
from moment_persistence.naming import service_metadata
from moment_runtime.revocations import define_revocations_table

metadata = service_metadata()

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    # The exact canonical bytes record_hash covers; every column below up to prev_hash must
    # agree with them.
    Column("document", Text, nullable=False),
    Column("record_hash", String(64), nullable=False),
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
    Column("producer_seq", BigInteger, nullable=True),
    # The hash chain: one per partition of audit.events, so ingest scales with partitions.
    Column("chain_partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    # Where the record was read from: not content, so not hashed.
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # Audit's HMAC over record_hash, "vN:<hex>" (migration 0008): proves the service itself
    # stored the row. Not content, so not hashed; the checkpointer signs only rows it vouches for.
    Column("record_mac", String(80), nullable=True),
    UniqueConstraint("source", "event_id", name="uq_audit_records_source_event"),
    UniqueConstraint("chain_partition", "seq", name="uq_audit_records_chain_seq"),
    CheckConstraint(DocumentAgreement(), name=CONSTRAINT),
    # Gap detection asks, per producer, which numbers it has seen.
    Index("ix_audit_records_source_producer_seq", "source", "producer_seq"),
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
    # Chained checkpoints (migration 0008): the partition's checkpoint counter from 1, the digest
    # of its previous checkpoint, and the signed set of partitions (JSON list). NULL on the
    # unchained checkpoints of earlier revisions. Heartbeats re-sign a head, so seq may repeat.
    Column("number", BigInteger, nullable=True),
    Column("prev", String(64), nullable=True),
    Column("partitions", Text, nullable=True),
    UniqueConstraint("chain_partition", "number", name="uq_audit_checkpoints_chain_number"),
)

# Where each partition's pruned chain starts (migration 0005): append-only, moves only forward,
# rests on a checkpoint of the same seq and hash, and is signed with the checkpoint key. The
# DELETE trigger on audit_records lets through only records at or below a horizon.
audit_retention_horizons = Table(
    "audit_retention_horizons",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("chain_partition", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("cutoff", DateTime(timezone=True), nullable=False),
    Column("pruned_at", DateTime(timezone=True), nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("signature", String(256), nullable=False),
    UniqueConstraint("chain_partition", "seq", name="uq_audit_retention_horizons_chain_seq"),
)

# The background watch's progress (migration 0006; service/watch.py): derived, never trusted
# by verify, kept so that a restart neither forgets a gap nor reports one twice.
audit_producer_marks = Table(
    "audit_producer_marks",
    metadata,
    Column("source", String(256), primary_key=True),
    # Every number up to it is stored or was reported missing; NULL until a baseline settles.
    Column("contiguous", BigInteger, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_watch_progress = Table(
    "audit_watch_progress",
    metadata,
    Column("name", String(64), primary_key=True),
    # The record id up to which that part of the watch has looked at every record.
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Identity's token revocations (migration 0007), fed from identity.events and looked up once per
# token the query API accepts: in the database, so every instance and every restart sees them.
revocations = define_revocations_table(metadata)

messaging = define_messaging_tables(metadata)
