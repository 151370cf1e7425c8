"""The consumer's presence, as the gap watch reads it: back when its partitions are assigned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka.structs import TopicPartition

from moment_audit.adapters.kafka import Presence

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_absent_until_assigned_then_absent_again_while_rebalancing() -> None:
    now = [T0]
    presence = Presence(clock=lambda: now[0])
    assert presence.since() is None
    now[0] = T0 + timedelta(seconds=30)
    presence.on_partitions_assigned([TopicPartition("audit.events", 0)])
    assert presence.since() == T0 + timedelta(seconds=30)
    presence.on_partitions_revoked([TopicPartition("audit.events", 0)])
    assert presence.since() is None
    now[0] = T0 + timedelta(seconds=45)
    # An empty assignment still counts: another instance of the group reads the partitions.
    presence.on_partitions_assigned([])
    assert presence.since() == T0 + timedelta(seconds=45)
