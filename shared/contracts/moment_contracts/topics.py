"""Topic names. Every topic is created explicitly at start-up: Tansu forgets them on restart."""

from __future__ import annotations

import re
from dataclasses import dataclass

DLQ_SUFFIX = ".dlq"

IDENTITY_COMMANDS = "identity.commands"
IDENTITY_EVENTS = "identity.events"
CONSENT_COMMANDS = "consent.commands"
CONSENT_EVENTS = "consent.events"
AUDIT_EVENTS = "audit.events"
# Queries of the audit trail (request/reply); requests carry a bearer token: ACL-restrict writers.
AUDIT_COMMANDS = "audit.commands"
AUDIT_CHECKPOINTS = "audit.checkpoints"
# The security team's streams: every record in OCSF for the SIEM, and the detection rules' alerts.
AUDIT_OCSF = "audit.ocsf"
AUDIT_ALERTS = "audit.alerts"


# Audit and identity histories must never be compacted: a keyed tombstone would erase evidence.
DELETE_POLICY: tuple[tuple[str, str], ...] = (("cleanup.policy", "delete"),)
# Kept for ever: audit.checkpoints is the witness a database administrator cannot rewrite, so
# verify can hold the store to every checkpoint ever signed (docs/audit.md). Tansu is memory-only
# and keeps nothing across a restart whatever this says; the deploy milestone's Kafka must carry it.
KEEP_FOREVER: tuple[tuple[str, str], ...] = (("retention.ms", "-1"), ("retention.bytes", "-1"))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    config: tuple[tuple[str, str], ...] = DELETE_POLICY


def dlq(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


REPLY_PREFIX = "replies."
# What follows the prefix: Kafka's legal topic characters, short enough for its 249 limit.
REPLY_INSTANCE = re.compile(r"[A-Za-z0-9._-]{1,200}")


def reply_topic(instance_id: str) -> str:
    """Each client instance reads its replies from a topic of its own, by manual assignment."""
    return f"{REPLY_PREFIX}{instance_id}"


def is_reply_topic(name: str) -> bool:
    """Whether `name` is one reply_topic() makes: the only topics a service sends replies to."""
    return name.startswith(REPLY_PREFIX) and bool(REPLY_INSTANCE.fullmatch(name, len(REPLY_PREFIX)))


# Topic settings beyond DELETE_POLICY, by topic name (not their dead-letter topics).
TOPIC_CONFIG: dict[str, tuple[tuple[str, str], ...]] = {AUDIT_CHECKPOINTS: KEEP_FOREVER}

CORE_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec(name, config=DELETE_POLICY + TOPIC_CONFIG.get(name, ()))
    for base in (
        IDENTITY_COMMANDS,
        IDENTITY_EVENTS,
        CONSENT_COMMANDS,
        CONSENT_EVENTS,
        AUDIT_EVENTS,
        AUDIT_CHECKPOINTS,
        AUDIT_OCSF,
        AUDIT_ALERTS,
        AUDIT_COMMANDS,
    )
    for name in (base, dlq(base))
)
