"""The benchmark runner works end to end at tiny counts. Structure only: no timing is asserted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from benchmarks.audit import audit, audit_e2e
from benchmarks.audited_read import audited_read, read_vault_calls
from benchmarks.context import BenchContext, Scale
from benchmarks.keyring import key_reads
from benchmarks.login import login
from benchmarks.measure import interleaved_throughput
from benchmarks.outbox import outbox_write
from benchmarks.recovery import recovery
from benchmarks.registry import Benchmark
from benchmarks.report import build_report, write_report
from benchmarks.revocation import revocation
from benchmarks.runner import RunResult, run_benchmarks
from moment_contracts.topics import CORE_TOPICS
from moment_crypto.config import VaultConfig
from moment_devstack.processes import ManagedProcess, tansu
from moment_messaging.admin import ensure_topics
from moment_messaging.config import KafkaConfig
from tests.support.postgres import PostgresDatabases


async def run_quick(
    benches: tuple[Benchmark, ...],
    scale: Scale,
    broker: ManagedProcess,
    vault: Callable[[str], VaultConfig],
    databases: PostgresDatabases,
) -> tuple[RunResult, BenchContext]:
    """Run `benches` at `scale` on the module's private broker, as `make bench` would."""
    kafka = KafkaConfig(bootstrap_servers=f"127.0.0.1:{broker.port}", client_id="bench")
    await ensure_topics(kafka, CORE_TOPICS)
    async with AsyncExitStack() as stack:
        ctx = BenchContext(kafka=kafka, vault=vault, databases=databases, scale=scale, stack=stack)
        return await run_benchmarks(benches, ctx), ctx


async def test_runner_reports_figures_ratios_and_goals(
    kafka_topics: KafkaConfig,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
    tmp_path: Path,
) -> None:
    benches = (outbox_write, key_reads)
    scale = Scale.quick()
    async with AsyncExitStack() as stack:
        ctx = BenchContext(
            kafka=kafka_topics,
            vault=vault_config_factory,
            databases=postgres_database_factory,
            scale=scale,
            stack=stack,
        )
        result = await run_benchmarks(benches, ctx)

    assert result.errors == {}
    figures = result.figures
    for name in ("outbox_write_per_s", "raw_insert_per_s", "outbox_write_ratio_to_raw_insert"):
        assert figures[name] > 0, name
    assert figures["warm_key_reads_per_s"] > 0
    assert figures["vault_calls_to_warm_up"] == scale.key_subjects
    assert "vault_calls_per_1000_key_reads" in figures

    path = tmp_path / "latest.json"
    write_report(build_report(benches, result, scale, ctx.notes), path)
    report = json.loads(path.read_text())
    assert set(report) >= {"machine", "run_at", "figures", "goals"}
    assert report["machine"]["cores"] >= 1
    assert set(report["goals"]) == {g.figure for b in benches for g in b.goals}
    assert all(isinstance(goal["met"], bool) for goal in report["goals"].values())


async def test_interleaved_throughput_runs_every_operation_count_times() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}

    async def a(index: int) -> None:
        seen["a"].append(index)

    async def b(index: int) -> None:
        seen["b"].append(index)

    rates = await interleaved_throughput([a, b], count=10, concurrency=3, budget_s=30)

    assert [r.done for r in rates] == [10, 10]
    assert sorted(seen["a"]) == sorted(seen["b"]) == list(range(10))


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A broker of the benchmarks' own: their identity service joins the consumer group
    "identity", which must not take partitions from the test suite's identity service."""
    broker = tansu(tmp_path_factory.mktemp("bench-broker"))
    broker.start()
    yield broker
    broker.stop()


async def test_identity_benchmarks_report_their_figures_and_goals(
    private_broker: ManagedProcess,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
) -> None:
    benches = (login, audited_read, read_vault_calls)
    scale = Scale.quick()
    result, ctx = await run_quick(
        benches, scale, private_broker, vault_config_factory, postgres_database_factory
    )

    assert result.errors == {}
    figures = result.figures
    measured = (
        "login_per_s",
        "raw_argon2_verify_per_s",
        "raw_argon2_verify_concurrent_per_s",
        "login_ratio_to_raw_argon2",
        "audited_read_per_s",
        "audited_read_p50_ms",
        "audited_read_p99_ms",
        "audited_read_broker_ack_per_s",
        "read_raw_kafka_serial_roundtrip_per_s",
        "read_raw_kafka_roundtrip_per_s",
        "audited_read_ratio_to_raw_kafka",
        "audited_read_broker_ack_ratio_to_raw_kafka",
    )
    for name in measured:
        assert figures[name] > 0, name
    assert figures["vault_calls_per_login"] >= 1, "every login has Vault sign its token"
    assert figures["vault_counted_reads"] == scale.vault_reads
    assert "vault_calls_per_1000_reads" in figures
    report = build_report(benches, result, scale, ctx.notes)
    assert set(report["goals"]) == {
        "login_ratio_to_raw_argon2",
        "audited_read_ratio_to_raw_kafka",
        "vault_calls_per_1000_reads",
    }


async def test_audit_benchmarks_report_their_figures_and_goals(
    private_broker: ManagedProcess,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
) -> None:
    benches = (audit, audit_e2e)
    scale = Scale.quick()
    result, ctx = await run_quick(
        benches, scale, private_broker, vault_config_factory, postgres_database_factory
    )

    assert result.errors == {}
    figures = result.figures
    measured = (
        "audit_ingest_per_s",
        "raw_ingest_per_s",
        "audit_ingest_ratio_to_raw",
        "verify_records_per_s",
        "raw_sha256_per_s",
        "verify_ratio_to_raw_sha256",
        "audit_e2e_p50_ms",
        "audit_e2e_p99_ms",
        "audit_e2e_reads",
    )
    for name in measured:
        assert figures[name] > 0, name
    assert not [n for n in ctx.notes if "did not verify" in n], "the benchmark's chain verifies"
    report = build_report(benches, result, scale, ctx.notes)
    assert set(report["goals"]) == {"audit_ingest_ratio_to_raw", "verify_ratio_to_raw_sha256_json"}


async def test_revocation_benchmark_reports_its_propagation_beside_raw_kafka(
    private_broker: ManagedProcess,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
) -> None:
    benches = (revocation,)
    scale = Scale.quick()
    result, ctx = await run_quick(
        benches, scale, private_broker, vault_config_factory, postgres_database_factory
    )

    assert result.errors == {}
    figures = result.figures
    for name in (
        "revocation_propagation_ms",
        "revocation_propagation_max_ms",
        "raw_kafka_roundtrip_p50_ms",
        "revocation_propagation_ratio_to_raw_kafka",
    ):
        assert figures[name] > 0, name
    assert figures["revocation_samples"] == scale.revocations
    report = build_report(benches, result, scale, ctx.notes)
    assert set(report["goals"]) == {"revocation_propagation_max_ms"}


async def test_recovery_benchmark_reports_the_restart_beside_a_bare_group_member(
    private_broker: ManagedProcess,
    vault_config_factory: Callable[[str], VaultConfig],
    postgres_database_factory: PostgresDatabases,
) -> None:
    benches = (recovery,)
    scale = Scale.quick()
    result, ctx = await run_quick(
        benches, scale, private_broker, vault_config_factory, postgres_database_factory
    )

    assert result.errors == {}
    figures = result.figures
    for name in (
        "audit_recovery_s",
        "audit_recovery_max_s",
        "raw_group_recovery_s",
        "audit_recovery_ratio_to_raw",
    ):
        assert figures[name] > 0, name
    assert figures["recovery_samples"] == scale.recoveries
    report = build_report(benches, result, scale, ctx.notes)
    assert set(report["goals"]) == {"audit_recovery_max_s"}
