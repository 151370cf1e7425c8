"""Consumer-group timing in KafkaConfig: fast recovery after a kill -9, static membership opt-in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from moment_messaging.config import KafkaConfig
from moment_messaging.runtime import group_instance_id


def test_defaults_expire_a_killed_member_within_seconds() -> None:
    config = KafkaConfig()
    assert config.session_timeout_ms <= 3_000
    assert 3 * config.heartbeat_interval_ms <= config.session_timeout_ms
    assert config.group_instance_id is None


def test_heartbeats_must_fit_three_times_in_a_session() -> None:
    with pytest.raises(ValidationError, match="heartbeat_interval_ms"):
        KafkaConfig(session_timeout_ms=6_000, heartbeat_interval_ms=3_000)


def test_static_membership_names_each_consumer_apart() -> None:
    assert group_instance_id(KafkaConfig(), "audit", "audit.events") is None
    config = KafkaConfig(group_instance_id="audit-0")
    ids = {
        group_instance_id(config, g, t)
        for g, t in [
            ("audit", "audit.events"),
            ("audit", "audit.commands"),
            ("audit-revocations", "identity.events"),
        ]
    }
    assert len(ids) == 3


def test_static_membership_refuses_several_workers() -> None:
    with pytest.raises(ValidationError, match="group_instance_id"):
        KafkaConfig(group_instance_id="audit-0", consumer_workers=2)
