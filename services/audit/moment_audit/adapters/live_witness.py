"""Follow `audit.checkpoints` for as long as the service runs, into the live witness's memory.

Like adapters/checkpoint_stream.py, by manual assignment from the first offset: no consumer group
(slow on Tansu, and a group would share the partitions out between instances, while each one must
witness every checkpoint) and no committed offsets. Every record is judged as that reader judges
it; a checkpoint enters the witness only once its signature verifies against the Transit public
keys of the checkpoint key, fetched through the service's Vault client and fetched again when a
signature names a key version not seen yet. Anything else is logged, counted and never trusted.

`caught_up_at` is the last instant the reader was past the stream's end offsets after a quiet
interval (Tansu reports end offsets short of a multi-record batch): every record published before
it has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from moment_audit.adapters.checkpoint_stream import (
    StreamRead,
    StreamUnavailable,
    _partitions,
    _past_end,
    judge_record,
)
from moment_audit.domain.checkpoints import Checkpoint
from moment_audit.service.verify import SignatureCheck, offline_signature_check
from moment_audit.service.witness_memory import Witness
from moment_client import fetching
from moment_contracts import topics
from moment_crypto.errors import CryptoError, VaultPermissionDenied
from moment_crypto.vault import VaultClient
from moment_messaging.config import KafkaConfig

log = logging.getLogger(__name__)
Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]

SETTLE_S = 1.0
RETRY_S = 5.0
FETCH_RECORDS = 500
# A signature naming an unknown key version fetches the keys again, at most this often: anyone
# who can write to the topic can name any version.
REFRESH_S = 1.0
# Warnings logged per batch at most; the rest are counted.
LOGGED_PER_BATCH = 5


def _version(signature: str) -> int | None:
    prefix, _, rest = signature.partition(":")
    number = rest.partition(":")[0].removeprefix("v")
    return int(number) if prefix == "vault" and number.isdigit() else None


class CheckpointKeys:
    """Checks checkpoint signatures offline with the checkpoint key's Transit public keys."""

    def __init__(self, vault: VaultClient, key_name: str) -> None:
        self._vault = vault
        self._key = key_name
        self._check: SignatureCheck | None = None
        self._versions: set[int] = set()
        self._fetched = -REFRESH_S
        self._online = False

    async def _refresh(self) -> None:
        self._fetched = time.monotonic()
        try:
            keys: Mapping[int, bytes] = await self._vault.transit_public_keys(self._key)
        except VaultPermissionDenied:
            if not self._online:
                log.warning("checkpoint public keys not readable: Vault verifies each checkpoint")
            self._online = True
            return
        self._versions = set(keys)
        self._check = offline_signature_check(keys)

    async def valid(self, checkpoint: Checkpoint) -> bool:
        """CryptoError when Vault cannot be asked: the checkpoint is judged later, not dropped."""
        asked_at = time.monotonic()
        version = _version(checkpoint.signature)
        unknown = version is not None and version not in self._versions
        if not self._online and (self._check is None or (unknown and self._fetched < asked_at)):
            # A version signed with existed before its checkpoint was read: keys fetched after
            # that know it. At most one fetch a second, whatever versions junk records name.
            await asyncio.sleep(max(0.0, self._fetched + REFRESH_S - time.monotonic()))
            await self._refresh()
        payload = checkpoint.payload()
        if self._online:
            return await self._vault.verify(self._key, payload, checkpoint.signature)
        return self._check is not None and self._check(payload, checkpoint.signature)


class StreamWitnessReader:
    """Reads the topic into `witness`; `run()` until cancelled, reconnecting after failures."""

    def __init__(
        self,
        kafka: KafkaConfig,
        keys: CheckpointKeys,
        witness: Witness,
        topic: str = topics.AUDIT_CHECKPOINTS,
    ) -> None:
        self._kafka = kafka
        self._keys = keys
        self.witness = witness
        self._topic = topic
        self.caught_up_at: datetime | None = None
        self.records = 0
        self.rejected = 0
        self._positions: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        fetching.install()
        while True:
            try:
                await self._follow()
            except (StreamUnavailable, KafkaError, OSError) as exc:
                log.warning("audit witness: %s not readable, will retry: %s", self._topic, exc)
            except Exception:
                # The witness must not die quietly: what it read so far stays, it reads on.
                log.exception("audit witness reader failed, will retry")
            await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=f"{self._kafka.client_id}-live-witness",
            enable_auto_commit=False,
            fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            request_timeout_ms=self._kafka.request_timeout_ms,
        )
        await consumer.start()
        try:
            partitions = await _partitions(consumer, self._topic)
            consumer.assign(partitions)
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            await self._poll(consumer, partitions)
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()

    async def _poll(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            if batch:
                quiet_since = loop.time()
                if not await self._take(consumer, batch):
                    await asyncio.sleep(RETRY_S)
                continue
            if loop.time() - quiet_since < SETTLE_S:
                continue
            asked_at = datetime.now(UTC)
            if await _past_end(consumer, partitions):
                self._caught_up(asked_at)

    def _caught_up(self, at: datetime) -> None:
        if self.caught_up_at is None:
            log.info(
                "audit witness caught up with %s: %d checkpoints witnessed, %d records rejected",
                self._topic,
                self.witness.checkpoints,
                self.rejected,
            )
        self.caught_up_at = at

    async def _take(self, consumer: AIOKafkaConsumer, batch: Batch) -> bool:
        """False when Vault could not be asked: that partition is read again from there."""
        taken = True
        read = StreamRead()
        for tp, records in sorted(batch.items()):
            for record in records:
                if not await self._take_one(record, read):
                    consumer.seek(tp, record.offset)
                    taken = False
                    break
                self._positions[tp] = record.offset + 1
        for warning in read.warnings[:LOGGED_PER_BATCH]:
            log.warning("audit witness: %s", warning)
        self.rejected += len(read.warnings)
        return taken

    async def _take_one(self, record: ConsumerRecord[Any, Any], read: StreamRead) -> bool:
        self.records += 1
        before = len(read.checkpoints)
        judge_record(record, self._kafka.max_message_bytes, read)
        if len(read.checkpoints) == before:
            return True
        checkpoint = read.checkpoints.pop()
        where = f"{record.topic} partition {record.partition} offset {record.offset}"
        try:
            valid = await self._keys.valid(checkpoint)
        except CryptoError as exc:
            log.warning("audit witness: %s not checked yet (%s)", where, type(exc).__name__)
            self.records -= 1
            return False
        if not valid:
            read.warnings.append(f"{where}: checkpoint signature does not verify, not trusted")
        elif not self.witness.add(checkpoint):
            log.warning(
                "audit witness: %s: a second validly signed checkpoint for partition %d number "
                "%d (signed again after its row was deleted?); the first is kept",
                where,
                checkpoint.partition,
                checkpoint.number,
            )
        return True
