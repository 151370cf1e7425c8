"""The checkpoints' chain and cadence against a DBA on real PostgreSQL and SQLite, signed by a
real OpenBao (issue 9). The attacker holds the database (triggers out of the way) but not the
Vault key: they can delete or rewrite rows, and re-hash records, but sign nothing.

Each partition holds six records and three checkpoints: number 1 over seq 3 an hour ago, number
2 over seq 6 fifty minutes ago, and number 3, a heartbeat over seq 6, just now (the checkpointer
takes a clock, so the old ones are really signed with old times; nothing sleeps).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from moment_audit.adapters.checkpoints import Checkpointer
from moment_audit.adapters.orm import audit_chain_heads, audit_checkpoints, audit_records, messaging
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.config import CheckpointConfig
from moment_audit.domain.chain import ChainHead, content_of, extend
from moment_audit.service.ingest import ingest
from moment_audit.service.record_keys import read_record_macs
from moment_contracts import topics
from moment_contracts.alerts import AlertRaised
from moment_contracts.envelope import Envelope
from moment_crypto import VaultClient, VaultConfig
from moment_crypto.record_mac import RecordMacs
from moment_devstack.vault_bootstrap import AUDIT_RECORDS_PATH, ServiceCredentials
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_tamper import Store, environment, run_verify
from tests.support.audit_events import access
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.vault import VaultServer
from tests.support.waiting import DEADLINE_S, eventually

DIALECTS = ("postgresql", "sqlite")
HOUR_AGO = timedelta(hours=1)


class Clock:
    """The checkpointer's clock: the real time, minus `behind`."""

    def __init__(self) -> None:
        self.behind = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) - self.behind


class Chained(Store):
    """Two partitions of six records, each with three chained checkpoints (module docstring)."""

    offset = 0
    # As the service stores records: with its record MAC (read from Vault in `build`).
    macs: RecordMacs | None = None

    async def put(self, count: int) -> None:
        for _ in range(count):
            body = access(f"subject-{self.offset}")
            envelope = Envelope.of(body, source="/moment/identity", subject=body.subject_id)
            async with self.uow() as uow:
                assert await ingest(
                    uow, envelope, body, self.offset % 2, self.offset, macs=self.macs
                )
            self.offset += 1

    def checkpointer(self, vault: VaultClient, clock: Clock, **config: float) -> Checkpointer:
        return Checkpointer(vault, CheckpointConfig(**config), self.uow, clock=clock)

    async def build(self, vault: VaultClient) -> None:
        self.macs = await read_record_macs(vault, AUDIT_RECORDS_PATH)
        clock = Clock()
        checkpointer = self.checkpointer(vault, clock)
        for records, behind in ((6, HOUR_AGO), (6, timedelta(minutes=50)), (0, timedelta(0))):
            await self.put(records)
            clock.behind = behind
            assert len(await checkpointer.run_once(force=True)) == 2

    async def alerts(self, rule: str) -> list[AlertRaised]:
        outbox = messaging.outbox
        query = select(outbox.c.payload).where(outbox.c.topic == topics.AUDIT_ALERTS)
        async with self.database.sessionmaker() as session:
            payloads = (await session.scalars(query.order_by(outbox.c.id))).all()
        alerts = [AlertRaised.model_validate(json.loads(p)) for p in payloads]
        return [a for a in alerts if a.rule == rule]

    async def numbers(self, partition: int) -> list[tuple[int, int]]:
        c = audit_checkpoints.c
        query = select(c.number, c.seq).where(c.chain_partition == partition).order_by(c.number)
        async with self.database.sessionmaker() as session:
            return [(int(n), int(s)) for n, s in (await session.execute(query)).all()]


@pytest.fixture(scope="module")
def audit_credentials(vault_bootstrap: dict[str, ServiceCredentials]) -> ServiceCredentials:
    return vault_bootstrap["audit"]


@pytest.fixture
async def vault(
    vault_config_factory: Callable[[str], VaultConfig],
) -> AsyncIterator[VaultClient]:
    async with VaultClient(vault_config_factory("audit")) as client:
        yield client


@pytest.fixture(params=DIALECTS)
async def store(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
    vault: VaultClient,
) -> AsyncIterator[Chained]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "cpchain")
    await upgrade_to_head(url, MIGRATIONS)
    built = Chained(url)
    await built.build(vault)
    yield built
    await built.database.dispose()


@pytest.fixture
def env(
    store: Chained, vault_server: VaultServer, audit_credentials: ServiceCredentials
) -> dict[str, str]:
    return environment(vault_server, audit_credentials, store.url)


def findings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("partition")]


def stale(partition: int, seq: int, number: int) -> str:
    return f"partition {partition} seq {seq}: STALE CHECKPOINT (newest checkpoint (number {number})"


async def test_an_intact_chain_verifies_and_new_records_are_not_yet_covered(
    store: Chained, env: dict[str, str]
) -> None:
    code, out = await run_verify(env)
    assert (code, out.splitlines()) == (0, ["12 records, 6 checkpoints: verified"])
    await store.put(3)
    code, out = await run_verify(env)
    assert (code, out.splitlines()) == (
        0,
        [
            "not yet covered: partition 0, 2 records after seq 6",
            "not yet covered: partition 1, 1 records after seq 6",
            "15 records, 6 checkpoints: verified; 3 records not yet covered",
        ],
    )
    code, out = await run_verify(env, "--json")
    assert json.loads(out)["not_covered"] == [
        {"partition": 0, "after_seq": 6, "records": 2},
        {"partition": 1, "after_seq": 6, "records": 1},
    ]


async def test_a_deleted_middle_checkpoint_is_missing(store: Chained, env: dict[str, str]) -> None:
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 0 AND number = 2")
    code, out = await run_verify(env)
    assert (code, findings(out)) == (1, ["partition 0 seq 6: CHECKPOINT MISSING (number 2)"])


async def test_the_newest_checkpoint_deleted_leaves_a_stale_one(
    store: Chained, env: dict[str, str]
) -> None:
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 1 AND number = 3")
    code, out = await run_verify(env, "--max-age", "600")
    assert code == 1
    [finding] = findings(out)
    assert finding.startswith(stale(1, 6, 2))
    # Within the allowed age, only a witness of the signed checkpoints can tell.
    code, out = await run_verify(env, "--max-age", "7200")
    assert (code, findings(out)) == (0, [])


async def test_every_checkpoint_of_a_partition_deleted(store: Chained, env: dict[str, str]) -> None:
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 0")
    code, out = await run_verify(env)
    assert (code, findings(out)) == (
        1,
        [
            "partition 0 seq 1: CHECKPOINT MISSING "
            "(all of them, though signed checkpoints name the partition)",
        ],
    )
    assert (
        out.splitlines()[-1] == "12 records, 3 checkpoints: 1 findings; 6 records not yet covered"
    )


async def test_every_checkpoint_deleted(store: Chained, env: dict[str, str]) -> None:
    await store.tamper("DELETE FROM audit_checkpoints")
    code, out = await run_verify(env)
    assert (code, findings(out)) == (
        1,
        [
            "partition 0 seq 1: STALE CHECKPOINT (never checkpointed)",
            "partition 1 seq 1: STALE CHECKPOINT (never checkpointed)",
        ],
    )


async def test_a_whole_partition_deleted_is_missing(store: Chained, env: dict[str, str]) -> None:
    await store.tamper(
        *(
            f"DELETE FROM {table} WHERE chain_partition = 1"
            for table in ("audit_records", "audit_checkpoints", "audit_chain_heads")
        )
    )
    code, out = await run_verify(env)
    assert (code, findings(out)) == (
        1,
        [
            "partition 1 seq 0: PARTITION MISSING "
            "(named by signed checkpoints; no record and no checkpoint left)"
        ],
    )


async def test_a_whole_partition_deleted_with_every_checkpoint_naming_it(
    store: Chained, env: dict[str, str]
) -> None:
    # The clever variant: no signed set is left to name partition 1, but partition 0's records
    # are left without a checkpoint, which a live checkpointer never allows for long.
    await store.tamper(
        "DELETE FROM audit_records WHERE chain_partition = 1",
        "DELETE FROM audit_chain_heads WHERE chain_partition = 1",
        "DELETE FROM audit_checkpoints",
    )
    code, out = await run_verify(env)
    assert (code, findings(out)) == (
        1,
        ["partition 0 seq 1: STALE CHECKPOINT (never checkpointed)"],
    )


async def test_everything_deleted_needs_the_witness(store: Chained, env: dict[str, str]) -> None:
    # Records, checkpoints and heads all gone: nothing signed is left in the database to say a
    # store existed. Only a witness holding the signed checkpoints (audit.checkpoints, an
    # exported file) can; until verify consults one, this is what it answers.
    await store.tamper(
        *(f"DELETE FROM {t}" for t in ("audit_records", "audit_checkpoints", "audit_chain_heads"))
    )
    code, out = await run_verify(env)
    assert (code, out.splitlines()) == (0, ["0 records, 0 checkpoints: verified"])


async def rewrite(store: Chained, partition: int, from_seq: int) -> None:
    """Change one record's purpose and re-hash the chain from it on, as someone who knows the
    algorithm would, head included."""
    c = audit_records.c
    query = select(audit_records).where(c.chain_partition == partition).order_by(c.seq)
    async with store.database.sessionmaker() as session:
        rows = [dict(r) for r in (await session.execute(query)).mappings()]
    head = ChainHead(partition, from_seq - 1, rows[from_seq - 2]["record_hash"])
    statements = []
    for row in rows[from_seq - 1 :]:
        content = content_of(row)
        if row["seq"] == from_seq:
            content["purpose"] = "marketing"
        link = extend(head, content)
        head = link.head
        statements.append(
            update(audit_records)
            .where(c.id == row["id"])
            .values(
                document=link.document,
                record_hash=link.record_hash,
                prev_hash=link.prev_hash,
                purpose=content["purpose"],
            )
        )
    heads = audit_chain_heads.c
    statements.append(
        update(audit_chain_heads).where(heads.chain_partition == partition).values(hash=head.hash)
    )
    await store.tamper(*statements)


async def test_a_rewritten_record_whose_newer_checkpoints_are_deleted(
    store: Chained, env: dict[str, str]
) -> None:
    # Seq 5 is covered by checkpoints 2 and 3; checkpoint 1 (seq 3) stays and still matches.
    await rewrite(store, 0, 5)
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 0 AND number >= 2")
    code, out = await run_verify(env)
    assert code == 1
    # Re-hashed without the record MAC key: each rewritten record's MAC fails too.
    finding, *unauthenticated = findings(out)
    assert finding.startswith(stale(0, 3, 1))
    assert unauthenticated == [
        f"partition 0 seq {seq}: UNAUTHENTICATED RECORD (bad MAC)" for seq in (5, 6)
    ]
    assert "not yet covered: partition 0, 3 records after seq 3" in out


async def test_a_rewritten_record_whose_every_checkpoint_is_deleted(
    store: Chained, env: dict[str, str]
) -> None:
    await rewrite(store, 0, 2)
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 0")
    code, out = await run_verify(env)
    assert (code, findings(out)) == (
        1,
        [
            "partition 0 seq 1: CHECKPOINT MISSING "
            "(all of them, though signed checkpoints name the partition)",
            # Re-hashed without the record MAC key: each rewritten record's MAC fails too.
            *(f"partition 0 seq {seq}: UNAUTHENTICATED RECORD (bad MAC)" for seq in range(2, 7)),
        ],
    )


async def test_the_checkpointer_signs_heartbeats_when_idle(
    store: Chained, env: dict[str, str], vault: VaultClient
) -> None:
    checkpointer = store.checkpointer(vault, Clock(), every_seconds=0.5)
    checkpointer.start()
    try:

        async def five_each() -> bool:
            return len(await store.numbers(0)) >= 5 and len(await store.numbers(1)) >= 5

        await eventually(five_each, what="five heartbeats per partition")
    finally:
        await checkpointer.stop()
    numbers = await store.numbers(0)
    assert len(numbers) >= 5
    assert numbers[:5] == [(1, 3), (2, 6), (3, 6), (4, 6), (5, 6)], "same head, next number"
    # Generous: verify runs after the checkpointer stopped, in a process that may start slowly.
    code, out = await run_verify(env, "--max-age", str(int(DEADLINE_S)))
    assert code == 0, out


async def test_the_checkpointer_refuses_to_sign_over_deleted_checkpoints(
    store: Chained, vault: VaultClient
) -> None:
    clock = Clock()
    checkpointer = store.checkpointer(vault, clock)
    clock.behind = -timedelta(minutes=2)
    assert {cp.number for cp in await checkpointer.run_once()} == {4}
    await store.tamper("DELETE FROM audit_checkpoints WHERE chain_partition = 0 AND number = 4")
    clock.behind = -timedelta(minutes=4)
    signed = await checkpointer.run_once()
    assert [(cp.partition, cp.number) for cp in signed] == [(1, 5)]
    assert [n for n, _ in await store.numbers(0)] == [1, 2, 3], "nothing signed on top"
    [alert] = await store.alerts("checkpoint-rollback")
    assert alert.severity == "high"
    assert "partition 0: newest stored checkpoint is number 3, this process signed 4" in (
        alert.detail
    )
    clock.behind = -timedelta(minutes=6)
    assert [cp.partition for cp in await checkpointer.run_once()] == [1]
    assert len(await store.alerts("checkpoint-rollback")) == 1, "raised once"


async def test_the_cadence_is_timed_from_the_stored_checkpoints(
    store: Chained, vault: VaultClient
) -> None:
    # A new process (a restart, another instance) remembers nothing: the store tells it when.
    clock = Clock()
    checkpointer = store.checkpointer(vault, clock, every_records=2)
    assert await checkpointer.run_once() == [], "checkpoint 3 was signed just now"
    await store.put(2)
    assert await checkpointer.run_once() == [], "one new record per partition: not yet due"
    await store.put(2)
    made = await checkpointer.run_once()
    assert sorted((cp.partition, cp.number, cp.seq) for cp in made) == [(0, 4, 8), (1, 4, 8)]
    assert made[0].partitions == (0, 1)
    clock.behind = -timedelta(seconds=61)
    beats = await checkpointer.run_once()
    assert sorted((cp.partition, cp.number, cp.seq) for cp in beats) == [(0, 5, 8), (1, 5, 8)]


async def test_the_checkpointer_refuses_to_sign_a_head_behind_its_checkpoint(
    store: Chained, vault: VaultClient
) -> None:
    # A DBA cut partition 1's chain and wound its head back, so the service chains on from
    # there: a checkpoint over that head would sign the cut.
    await store.tamper(
        "DELETE FROM audit_records WHERE chain_partition = 1 AND seq > 2",
        "UPDATE audit_chain_heads SET seq = 2, hash = (SELECT record_hash FROM audit_records "
        "WHERE chain_partition = 1 AND seq = 2) WHERE chain_partition = 1",
    )
    clock = Clock()
    clock.behind = -timedelta(minutes=2)
    checkpointer = store.checkpointer(vault, clock)
    assert [cp.partition for cp in await checkpointer.run_once()] == [0]
    [alert] = await store.alerts("checkpoint-rollback")
    assert "partition 1: chain head at seq 2, behind checkpoint 3 at seq 6" in alert.detail
