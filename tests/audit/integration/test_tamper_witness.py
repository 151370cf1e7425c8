"""An outside witness against a database superuser, on real PostgreSQL, SQLite, Tansu and OpenBao.

Each store holds two partitions of 12 records, signed twice each (checkpoints 1 and 2 at seq 6
and 12) by a real OpenBao, and published to `audit.checkpoints` on a Tansu of the test's own by
the real outbox relay. The security team then exports the witness file. The attacker holds the
database as superuser (triggers out of the way, and put back afterwards to cover their tracks)
but no Vault token: they can delete or rewrite any row, but sign nothing. `moment-audit verify
--witness FILE` and `--witness-stream` must name what they did.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy import func, select, update

from moment_audit.adapters.checkpoint_stream import read_checkpoint_stream
from moment_audit.adapters.orm import audit_chain_heads, audit_checkpoints, audit_records, messaging
from moment_audit.adapters.repositories import row_of
from moment_audit.adapters.witness_file import to_line
from moment_audit.bootstrap import MIGRATIONS
from moment_audit.domain.chain import ChainHead, content_of, extend
from moment_contracts import topics
from moment_contracts.audit_chain import CheckpointSigned
from moment_contracts.envelope import Envelope
from moment_contracts.topics import CORE_TOPICS
from moment_crypto import VaultClient, VaultConfig
from moment_devstack.processes import ManagedProcess
from moment_devstack.vault_bootstrap import ServiceCredentials
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from moment_messaging.outbox import OutboxRelay
from moment_messaging.producer import ResilientProducer
from moment_persistence.migrations import upgrade_to_head
from tests.audit.integration.test_tamper import DIALECTS, Store, environment
from tests.audit.unit.test_witness import signed
from tests.support.kafka import header, read_topic
from tests.support.postgres import PostgresDatabases, fresh_database_url
from tests.support.produce import publish
from tests.support.vault import VaultServer

MISSING = "CHECKPOINT MISSING (witnessed, not in the database)"
DIFFERS = "CHECKPOINT MISMATCH (differs from the witness)"
INTACT = "24 records, 4 checkpoints: verified"


@pytest.fixture(scope="module")
def audit_credentials(vault_bootstrap: dict[str, ServiceCredentials]) -> ServiceCredentials:
    return vault_bootstrap["audit"]


async def audit_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "moment-audit"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def findings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("partition", "schema"))]


class Witnessed(Store):
    """A store, its stream on a broker of the test's own, and the witness file exported."""

    env: dict[str, str]
    witness: Path

    async def publish_outbox(self, kafka: KafkaConfig) -> None:
        """What the running service's relay does: every outbox row onto its topic."""
        producer = ResilientProducer(
            kafka, "audit-relay", on_connect=lambda: ensure_topics(kafka, CORE_TOPICS)
        )
        relay = OutboxRelay(self.database.sessionmaker, messaging, producer, kafka)
        try:
            while await relay.publish_pending():
                pass
        finally:
            await relay.stop()

    async def dba(self, *statements: str | object) -> None:
        """As the superuser; `as_dba` puts SQLite's triggers back afterwards, as a careful
        attacker would."""
        await self.tamper(*statements)  # type: ignore[arg-type]

    async def count(self, table: object) -> int:
        async with self.uow() as uow:
            query = select(func.count()).select_from(table)  # type: ignore[arg-type]
            return int(await uow.session.scalar(query) or 0)

    async def verify(self, *args: str) -> tuple[int, str]:
        code, out, err = await audit_cli(self.env, "verify", *args)
        assert code != 2, err
        return code, out


@pytest.fixture(params=DIALECTS)
async def witnessed(
    request: pytest.FixtureRequest,
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
    private_broker: ManagedProcess,
    vault_server: VaultServer,
    audit_credentials: ServiceCredentials,
    vault_config_factory: Callable[[str], VaultConfig],
) -> AsyncIterator[Witnessed]:
    url = await fresh_database_url(request.param, postgres_database_factory, tmp_path, "witness")
    await upgrade_to_head(url, MIGRATIONS)
    store = Witnessed(url)
    async with VaultClient(vault_config_factory("audit")) as vault:
        await store.fill(vault)
        await store.fill(vault)
    bootstrap = f"127.0.0.1:{private_broker.port}"
    await store.publish_outbox(KafkaConfig(bootstrap_servers=bootstrap))
    store.env = environment(vault_server, audit_credentials, url) | {
        "MOMENT_AUDIT_KAFKA__BOOTSTRAP_SERVERS": bootstrap
    }
    store.witness = tmp_path / "witness.jsonl"
    code, out, err = await audit_cli(
        store.env, "checkpoints", "export", "--out", str(store.witness)
    )
    assert (code, out.strip()) == (0, f"4 checkpoints in {store.witness} (4 new)"), err
    yield store
    await store.database.dispose()


async def test_the_checkpoint_stream_is_kept_for_ever(private_broker: ManagedProcess) -> None:
    bootstrap = f"127.0.0.1:{private_broker.port}"
    await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap), CORE_TOPICS)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.AUDIT_CHECKPOINTS)]
        )
    finally:
        await admin.close()
    (resource,) = described[0].resources
    entries = {entry[0]: entry[1] for entry in resource[4]}
    assert (entries["retention.ms"], entries["retention.bytes"]) == ("-1", "-1")
    assert entries["cleanup.policy"] == "delete"


async def test_the_stream_is_read_past_an_end_offset_short_of_its_last_record(
    private_broker: ManagedProcess,
) -> None:
    # Tansu reports an end offset short of the records a batch holds (1 for this batch of 5).
    kafka = KafkaConfig(bootstrap_servers=f"127.0.0.1:{private_broker.port}")
    await ensure_topics(kafka, CORE_TOPICS)
    made = [signed(0, n, n, f"{n:064x}") for n in range(1, 6)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        batch = producer.create_batch()
        for checkpoint in made:
            envelope = Envelope.of(
                CheckpointSigned.model_validate_json(to_line(checkpoint)), source="/moment/audit"
            )
            headers = [(k, v) for k, v in envelope.headers() if v is not None]
            assert batch.append(key=None, value=envelope.data, timestamp=None, headers=headers)
        await (await producer.send_batch(batch, topics.AUDIT_CHECKPOINTS, partition=0))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        partition = TopicPartition(topics.AUDIT_CHECKPOINTS, 0)
        end = (await consumer.end_offsets([partition]))[partition]
    finally:
        await consumer.stop()
    assert end < len(made), "Tansu reports the true end now: no short end offset to read past"
    read = await read_checkpoint_stream(kafka, timeout_s=60)
    assert [(c.number, c.signature) for c in read.checkpoints] == [
        (c.number, c.signature) for c in made
    ]
    assert read.warnings == []


async def test_the_witness_file_holds_every_signed_checkpoint(witnessed: Witnessed) -> None:
    lines = witnessed.witness.read_text().splitlines()
    bodies = [CheckpointSigned.model_validate_json(line) for line in lines]
    assert [(b.partition, b.number, b.seq) for b in bodies] == [
        (0, 1, 6),
        (0, 2, 12),
        (1, 1, 6),
        (1, 2, 12),
    ]
    assert all(b.partitions == [0, 1] for b in bodies)
    # The stream holds the same ones: exporting it into the file adds nothing, changes nothing.
    code, out, _ = await audit_cli(
        witnessed.env, "checkpoints", "export", "--from-stream", "--out", str(witnessed.witness)
    )
    assert (code, out.strip()) == (0, f"4 checkpoints in {witnessed.witness} (0 new)")
    assert witnessed.witness.read_text().splitlines() == lines
    # A witness that cannot be read verifies nothing: exit 2, not a pass.
    gone = witnessed.witness.with_name("gone.jsonl")
    code, out, err = await audit_cli(witnessed.env, "verify", "--witness", str(gone))
    assert (code, out) == (2, "")
    assert f"{gone}: cannot be read (FileNotFoundError)" in err


async def test_an_intact_store_verifies_against_both_witnesses(witnessed: Witnessed) -> None:
    # Anyone who can write to the stream can put junk there, or a checkpoint they cannot sign.
    bootstrap = witnessed.env["MOMENT_AUDIT_KAFKA__BOOTSTRAP_SERVERS"]
    body = CheckpointSigned.model_validate_json(witnessed.witness.read_text().splitlines()[1])
    forged = body.model_copy(update={"seq": 13})
    await publish(
        bootstrap,
        topics.AUDIT_CHECKPOINTS,
        Envelope.of(forged, source="/moment/audit", subject="partition-0"),
        Envelope(type=CheckpointSigned.ce_type, source="/moment/audit", data=b"{}"),
    )
    code, out = await witnessed.verify("--witness", str(witnessed.witness), "--witness-stream")
    assert (code, out.splitlines()[-1]) == (0, INTACT)
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert any("partition 0 number 2 (seq 13): signature does not verify" in w for w in warnings)
    assert any("not a signed checkpoint" in w for w in warnings)


EVERYTHING = [
    "DELETE FROM audit_records",
    "DELETE FROM audit_checkpoints",
    "DELETE FROM audit_chain_heads",
]


async def test_deleting_everything_is_named_only_through_the_witness(
    witnessed: Witnessed,
) -> None:
    await witnessed.dba(*EVERYTHING)
    # On its own the store cannot know: nothing is left to contradict.
    code, out = await witnessed.verify()
    assert (code, out.splitlines()) == (0, ["0 records, 0 checkpoints: verified"])
    for witness in (["--witness", str(witnessed.witness)], ["--witness-stream"]):
        code, out = await witnessed.verify(*witness)
        assert code == 1
        assert {
            "partition 0 seq 1: TRUNCATED (chain ends at seq 0, signed up to seq 12)",
            "partition 1 seq 1: TRUNCATED (chain ends at seq 0, signed up to seq 12)",
            f"partition 0 seq 6: {MISSING}",
            f"partition 0 seq 12: {MISSING}",
            f"partition 1 seq 6: {MISSING}",
            f"partition 1 seq 12: {MISSING}",
        } <= set(findings(out))


async def test_deleting_the_newest_checkpoint_is_named(witnessed: Witnessed) -> None:
    await witnessed.dba("DELETE FROM audit_checkpoints WHERE chain_partition = 1 AND number = 2")
    code, out = await witnessed.verify("--witness", str(witnessed.witness))
    assert code == 1
    assert f"partition 1 seq 12: {MISSING}" in findings(out)
    assert out.splitlines()[-1].startswith("24 records, 3 checkpoints: ")


async def test_deleting_a_whole_partition_is_named(witnessed: Witnessed) -> None:
    await witnessed.dba(*(f"{statement} WHERE chain_partition = 1" for statement in EVERYTHING))
    code, out = await witnessed.verify("--witness-stream")
    assert code == 1
    assert {
        "partition 1 seq 1: TRUNCATED (chain ends at seq 0, signed up to seq 12)",
        f"partition 1 seq 6: {MISSING}",
        f"partition 1 seq 12: {MISSING}",
    } <= set(findings(out))
    assert not [line for line in findings(out) if line.startswith("partition 0")]


async def rehash_from(store: Witnessed, partition: int, seq: int) -> list[object]:
    """Statements that edit record `seq` and re-chain every record after it, head included:
    a chain that links and hashes, the kind only a witnessed checkpoint contradicts."""
    r = audit_records.c
    async with store.uow() as uow:
        rows = (
            await uow.session.execute(
                select(audit_records)
                .where(r.chain_partition == partition, r.seq >= seq - 1)
                .order_by(r.seq)
            )
        ).mappings()
        rows = list(rows)
    before, *rest = rows
    head = ChainHead(partition, int(before["seq"]), str(before["record_hash"]))
    statements: list[object] = []
    for row in rest:
        changes = {"purpose": "marketing"} if row["seq"] == seq else {}
        link = extend(head, {**content_of(dict(row)), **changes})
        values = row_of(link, row["kafka_partition"], row["kafka_offset"], row["received_at"])
        statements.append(update(audit_records).where(r.id == row["id"]).values(values))
        head = link.head
    statements.append(
        update(audit_chain_heads)
        .where(audit_chain_heads.c.chain_partition == partition)
        .values(seq=head.seq, hash=head.hash)
    )
    return statements


async def test_a_rehashed_chain_whose_checkpoints_were_deleted_is_named(
    witnessed: Witnessed,
) -> None:
    # Record 8 of partition 0 "corrected", seq 8-12 re-hashed, checkpoint 2 (seq 12) deleted.
    await witnessed.dba(
        *await rehash_from(witnessed, 0, 8),
        "DELETE FROM audit_checkpoints WHERE chain_partition = 0 AND number = 2",
    )
    async with witnessed.uow() as uow:
        purpose = await uow.session.scalar(
            select(audit_records.c.purpose).where(
                audit_records.c.chain_partition == 0, audit_records.c.seq == 8
            )
        )
    assert purpose == "marketing"
    for witness in (["--witness", str(witnessed.witness)], ["--witness-stream"]):
        code, out = await witnessed.verify(*witness)
        assert code == 1
        assert {
            "partition 0 seq 12: CHECKPOINT MISMATCH",
            f"partition 0 seq 12: {MISSING}",
        } <= set(findings(out))
        assert not [line for line in findings(out) if line.startswith("partition 1")]


async def test_a_checkpoint_replaced_by_another_partitions_older_one_is_named(
    witnessed: Witnessed,
) -> None:
    # Partition 0's newest checkpoint row rewritten to partition 1's older, validly signed one.
    c = audit_checkpoints.c
    async with witnessed.uow() as uow:
        older = (
            (await uow.session.execute(select(audit_checkpoints).where(c.chain_partition == 1)))
            .mappings()
            .first()
        )
    assert older is not None
    assert older["number"] == 1
    copied = {name: older[name] for name in ("seq", "hash", "created_at", "signature", "prev")}
    await witnessed.dba(
        update(audit_checkpoints)
        .where(c.chain_partition == 0, c.number == 2)
        .values(**copied, number=2)
    )
    code, out = await witnessed.verify("--witness", str(witnessed.witness))
    assert code == 1
    assert {
        "partition 0 seq 6: BAD SIGNATURE",
        f"partition 0 seq 12: {DIFFERS}",
    } <= set(findings(out))


async def test_export_refuses_to_merge_a_database_that_disagrees_with_the_file(
    witnessed: Witnessed,
) -> None:
    kept = witnessed.witness.read_bytes()
    await witnessed.dba(
        "UPDATE audit_checkpoints SET signature = 'vault:v1:AAAA' "
        "WHERE chain_partition = 0 AND number = 1"
    )
    code, out, err = await audit_cli(
        witnessed.env, "checkpoints", "export", "--out", str(witnessed.witness)
    )
    assert (code, out) == (1, "")
    assert (
        "refused: partition 0 number 1 (seq 6): the database holds a different checkpoint than "
        f"{witnessed.witness}; the file is evidence and was left unchanged"
    ) in err
    assert witnessed.witness.read_bytes() == kept
    # A fresh file takes only what verifies.
    fresh = witnessed.witness.with_name("fresh.jsonl")
    code, out, err = await audit_cli(witnessed.env, "checkpoints", "export", "--out", str(fresh))
    assert (code, out.strip()) == (1, f"3 checkpoints in {fresh} (3 new)")
    assert "not exported: partition 0 number 1 (seq 6): signature does not verify" in err


async def test_import_restores_deleted_checkpoints_and_verify_passes_again(
    witnessed: Witnessed,
) -> None:
    await witnessed.dba("DELETE FROM audit_checkpoints")
    code, out = await witnessed.verify("--witness", str(witnessed.witness))
    assert code == 1
    assert {f"partition {p} seq {s}: {MISSING}" for p in (0, 1) for s in (6, 12)} <= set(
        findings(out)
    )
    code, out, err = await audit_cli(witnessed.env, "checkpoints", "import", str(witnessed.witness))
    assert (code, out.strip()) == (0, "4 checkpoints restored (0 already in the database)"), err
    assert await witnessed.count(audit_checkpoints) == 4
    code, out = await witnessed.verify()
    assert (code, out.splitlines()[-1]) == (0, INTACT)
    code, out = await witnessed.verify("--witness", str(witnessed.witness), "--witness-stream")
    assert (code, out.splitlines()[-1]) == (0, INTACT)
    code, out, _ = await audit_cli(witnessed.env, "checkpoints", "import", str(witnessed.witness))
    assert (code, out.strip()) == (0, "0 checkpoints restored (4 already in the database)")


async def test_import_refuses_a_forged_line_and_a_conflict_and_restores_nothing(
    witnessed: Witnessed,
) -> None:
    await witnessed.dba("DELETE FROM audit_checkpoints WHERE number = 2")
    lines = witnessed.witness.read_text().splitlines()
    body = json.loads(lines[0])
    forged = witnessed.witness.with_name("forged.jsonl")
    forged.write_text("\n".join([*lines, json.dumps({**body, "number": 3, "seq": 13})]) + "\n")
    code, _, err = await audit_cli(witnessed.env, "checkpoints", "import", str(forged))
    assert code == 1
    assert "refused: partition 0 number 3 (seq 13): signature does not verify" in err
    await witnessed.dba(
        "UPDATE audit_checkpoints SET seq = 5 WHERE chain_partition = 1 AND number = 1"
    )
    code, _, err = await audit_cli(witnessed.env, "checkpoints", "import", str(witnessed.witness))
    assert code == 1
    assert "refused: partition 1 number 1 (seq 6): the database holds a different checkpoint" in err
    assert await witnessed.count(audit_checkpoints) == 2


async def test_checkpoints_kept_from_the_stream_are_a_warning(
    witnessed: Witnessed, vault_config_factory: Callable[[str], VaultConfig]
) -> None:
    # The clever variant: new checkpoints' outbox rows marked sent, so the stream never sees
    # them. The stream can't vouch for what it never saw; verify says so.
    async with VaultClient(vault_config_factory("audit")) as vault:
        await witnessed.fill(vault)
    outbox = messaging.outbox
    await witnessed.dba(
        update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=func.now())
    )
    code, out = await witnessed.verify("--witness-stream")
    assert (code, out.splitlines()[-1]) == (0, "36 records, 6 checkpoints: verified")
    assert [line for line in out.splitlines() if line.startswith("warning:")] == [
        f"warning: partition {p}: 1 stored checkpoints (numbers 3-3) are not witnessed"
        for p in (0, 1)
    ]


async def test_the_relay_published_what_the_witness_holds(witnessed: Witnessed) -> None:
    published = await read_topic(
        witnessed.env["MOMENT_AUDIT_KAFKA__BOOTSTRAP_SERVERS"],
        topics.AUDIT_CHECKPOINTS,
        expect=4,
        timeout_s=30,
        where=lambda r: header(r, "ce_type") == CheckpointSigned.ce_type,
    )
    on_stream = sorted(
        json.loads(CheckpointSigned.model_validate_json(r.value).model_dump_json())["signature"]
        for r in published
    )
    in_file = sorted(json.loads(line)["signature"] for line in witnessed.witness.open())
    assert on_stream == in_file
