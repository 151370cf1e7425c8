"""Kafka settings, shared by every service. Defaults suit Tansu; real Kafka can switch on more."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class KafkaConfig(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "moment"
    acks: Literal["all", 1, 0] = "all"
    # Tansu has no InitProducerId, so both stay off by default; on real Kafka turn them on.
    # `transactional` makes the outbox relay publish each batch in one Kafka transaction, so a
    # read_committed consumer never sees half a batch.
    enable_idempotence: bool = False
    transactional: bool = False
    request_timeout_ms: int = Field(default=10_000, ge=100)
    # Tansu holds a fetch for the full wait even when data is there: keep it short where latency
    # counts.
    fetch_max_wait_ms: int = Field(default=10, ge=1)
    # The contract's record size (key, value and headers together). Topics are created with it as
    # max.message.bytes; consumers refuse larger records before parsing them and fetch at most
    # twice this per partition (runtime.partition_fetch_bytes); producers may send four times it,
    # so a dead letter always fits.
    max_message_bytes: int = Field(default=256 * 1024, ge=1024)
    handler_retries: int = Field(default=3, ge=0)
    consumer_workers: int = Field(default=1, ge=1, le=64)
    retry_backoff_ms: int = Field(default=100, ge=0)
    replication_factor: int = Field(default=1, ge=1)
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_interval_ms: int = Field(default=200, ge=5)
    outbox_max_backoff_ms: int = Field(default=5_000, ge=10)
    # Consumer groups, tuned so a restarted service consumes again within seconds of a kill -9.
    # A clean stop sends LeaveGroup (aiokafka's consumer.stop, run by FastStream's subscriber
    # stop), so the group rebalances at once. A killed member leaves nothing: the group waits
    # until its session expires before the new member gets its partitions (on Tansu, restart to
    # first batch measured about 6 s + 2 x the session: 19 s at 6 s, 13 s at 3 s; `make bench`,
    # "recovery"), so the session is short and heartbeats frequent (a third of it or less, so one
    # lost heartbeat does not expire a live member). Real Kafka refuses sessions below its
    # group.min.session.timeout.ms (6 s by default): set 6000 or more there.
    session_timeout_ms: int = Field(default=3_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    # How long the coordinator waits for every member to rejoin once a rebalance starts. The
    # default is the session: a member that does not rejoin by then is dropped, not waited for.
    rebalance_timeout_ms: int | None = Field(default=None, ge=1_000)
    # A member that does not poll for this long is considered stuck and leaves the group. One
    # poll's work (a batch stored and chained) stays far below it.
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # Static membership (KIP-345), for real Kafka: a member restarted under the same instance
    # id takes its partitions back at once, with no rebalance, and a killed one is replaced at
    # its first JoinGroup instead of after its session. Each consumer's id is this prefix with
    # its group and topic; two running processes must not share a prefix (the broker fences
    # the older one). Tansu 0.6 accepts the id but does not hand a killed static member's
    # partitions over at once (measured: about a session, against two for a dynamic member);
    # its fencing is untested: leave unset there.
    group_instance_id: str | None = None

    @model_validator(mode="after")
    def _consistent_group_timing(self) -> KafkaConfig:
        if 3 * self.heartbeat_interval_ms > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        if self.group_instance_id is not None and self.consumer_workers > 1:
            # Each worker is a member of its own: they would share one instance id.
            raise ValueError("group_instance_id needs consumer_workers = 1")
        return self
