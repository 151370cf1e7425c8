"""The benchmark runner's hard stop says where a stuck benchmark was waiting."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from benchmarks.context import BenchContext, Scale
from benchmarks.registry import Benchmark, Figures
from benchmarks.runner import run_benchmarks
from moment_messaging.config import KafkaConfig


async def _wait_for_nothing(event: asyncio.Event) -> None:
    await event.wait()


async def _stuck(_ctx: BenchContext) -> Figures:
    await _wait_for_nothing(asyncio.Event())
    return {}


async def _quick(_ctx: BenchContext) -> Figures:
    return {"figure": 1.0}


def _no_vault(_name: str) -> Any:
    raise AssertionError("not used")


async def test_a_stuck_benchmark_is_stopped_with_where_it_waited_and_the_next_still_runs() -> None:
    benches = (Benchmark("stuck", _stuck, timeout_s=0.5), Benchmark("quick", _quick))
    async with AsyncExitStack() as stack:
        ctx = BenchContext(
            kafka=KafkaConfig(bootstrap_servers="127.0.0.1:1"),
            vault=_no_vault,
            databases=None,  # type: ignore[arg-type]
            scale=Scale.quick(),
            stack=stack,
        )
        result = await run_benchmarks(benches, ctx)
    error = result.errors["stuck"]
    assert error.startswith("BenchTimedOut: over 0.5s, waiting at _stuck:"), error
    assert "_wait_for_nothing:" in error
    assert result.by_benchmark["quick"] == {"figure": 1.0}
