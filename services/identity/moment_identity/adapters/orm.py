"""Identity's tables. Personal fields hold AES-GCM ciphertext only; lookups go through blind
indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    true,
)

from moment_messaging.tables import define_messaging_tables
from moment_persistence.naming import service_metadata

metadata = service_metadata()

# Destroying a subject's row here is crypto-shredding: without the wrapped key, the subject's
# ciphertext in this database is noise. (Requests in Kafka's history are sealed to identity's
# transport key instead; erasure rotates that key.) A backup taken before the erasure still holds
# the wrapped key, so backups need their own retention (docs/architecture.md).
subject_keys = Table(
    "subject_keys",
    metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("key_version", Integer, nullable=False),
    Column("wrapped_key", String(512), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column(
        "subject_id",
        String(36),
        ForeignKey("subject_keys.subject_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(32), nullable=False),
    Column("locale", String(2), nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("username_index", String(80), nullable=False, unique=True),
    Column("email_index", String(80), nullable=False, unique=True),
    Column("name_ct", LargeBinary, nullable=False),
    Column("age_ct", LargeBinary, nullable=False),
    Column("email_ct", LargeBinary, nullable=False),
    Column("username_ct", LargeBinary, nullable=False),
    Column("recovery_question_ct", LargeBinary, nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("recovery_answer_hash", String(256), nullable=False),
    # Raised to revoke every token issued so far (password change, lockout, erasure).
    Column("session_version", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

messaging = define_messaging_tables(metadata, replies=True)

# Failure counters shared by every identity instance (they all use this database).
auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(96), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)

# Store staff: support operators, the privacy officer, legal counsel, security analysts, admins.
# Their usernames are kept only as blind indexes: staff are people too.
staff_accounts = Table(
    "staff_accounts",
    metadata,
    Column("staff_id", String(64), primary_key=True),
    Column("username_index", String(80), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("session_version", Integer, nullable=False, server_default="0"),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One live recovery code per subject, hashed like a password, short-lived and attempt-limited.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column(
        "subject_id",
        String(36),
        ForeignKey("subject_keys.subject_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("code_hash", String(256), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# What remains of an erased subject: the fact and the time, never a value. Lets identity answer
# "erased" instead of "unknown", and lets audit flag any later access attempt.
erasures = Table(
    "erasures",
    metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=True),
)

# The last sequence number stamped on this producer's audit events. Taken in the transaction
# that writes the event, so a rollback hands the number back instead of leaving a hole.
producer_sequences = Table(
    "producer_sequences",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Ids of requests answered without an inbox entry (reads): a read is served once per id. Kept
# for the sealed-box window (SEALING__MAX_AGE_S), after which the request's boxes are stale anyway.
used_request_ids = Table(
    "used_request_ids",
    metadata,
    Column("source", String(256), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("used_at", DateTime(timezone=True), nullable=False, index=True),
)
