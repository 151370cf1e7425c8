"""Kafka settings, shared by every service. Defaults suit Tansu; real Kafka can switch on more."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
