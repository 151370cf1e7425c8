"""Run benchmarks one after another, derive their ratios, and keep going when one fails.

A failing benchmark is recorded with its error and the run goes on, so the figures of the others
are not lost; the exit status still says something failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.context import BenchContext
from benchmarks.registry import Benchmark, Figures, ratio


@dataclass
class RunResult:
    by_benchmark: dict[str, Figures] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    durations_s: dict[str, float] = field(default_factory=dict)

    @property
    def figures(self) -> Figures:
        """Every figure of the run in one flat map; figure names are unique across benchmarks."""
        return {name: v for figures in self.by_benchmark.values() for name, v in figures.items()}


def with_ratios(bench: Benchmark, figures: Figures) -> Figures:
    """`figures` plus each declared ratio whose figure and baseline were both measured."""
    derived = dict(figures)
    for comparison in bench.comparisons:
        if comparison.figure in figures and comparison.baseline in figures:
            derived[comparison.ratio] = ratio(
                figures[comparison.figure], figures[comparison.baseline]
            )
    return derived


async def run_benchmarks(
    benches: Sequence[Benchmark],
    ctx: BenchContext,
    progress: Callable[[str], None] = lambda _message: None,
) -> RunResult:
    result = RunResult()
    for bench in benches:
        progress(f"running {bench.name}")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(bench.timeout_s):
                figures = await bench.run(ctx)
        except Exception as exc:  # noqa: BLE001 - one failure must not discard the other figures
            result.errors[bench.name] = f"{type(exc).__name__}: {exc}"
            progress(f"{bench.name} failed: {type(exc).__name__}")
        else:
            result.by_benchmark[bench.name] = with_ratios(bench, figures)
        result.durations_s[bench.name] = time.perf_counter() - started
    return result
