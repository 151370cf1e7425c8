"""The benchmark runner works end to end at tiny counts. Structure only: no timing is asserted."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from benchmarks.context import BenchContext, Scale
from benchmarks.keyring import key_reads
from benchmarks.measure import interleaved_throughput
from benchmarks.outbox import outbox_write
from benchmarks.report import build_report, write_report
from benchmarks.runner import run_benchmarks
from moment_crypto.config import VaultConfig
from moment_messaging.config import KafkaConfig
from tests.support.postgres import PostgresDatabases


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
