"""Run benchmarks one after another, derive their ratios, and keep going when one fails.

A failing benchmark is recorded with its error and the run goes on, so the figures of the others
are not lost; the exit status still says something failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


class BenchTimedOut(TimeoutError):
    """A benchmark ran past its limit; the message says where it was waiting."""


def awaiting(coroutine: Any) -> str:
    """Where a suspended coroutine waits: each frame of its await chain, outermost first.

    A task's own stack shows only its outermost frame, which says nothing about a hang."""
    places: list[str] = []
    while coroutine is not None and len(places) < 40:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "ag_frame", None)
        if frame is None:
            places.append(type(coroutine).__name__)
            break
        places.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "ag_await", None)
    return " > ".join(places)


async def _bounded(run: Awaitable[Figures], limit_s: float) -> Figures:
    task = asyncio.ensure_future(run)
    done, _ = await asyncio.wait({task}, timeout=limit_s)
    if done:
        return task.result()
    where = awaiting(task.get_coro())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise BenchTimedOut(f"over {limit_s:g}s, waiting at {where}")


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
            figures = await _bounded(bench.run(ctx), bench.timeout_s)
        except Exception as exc:  # noqa: BLE001 - one failure must not discard the other figures
            result.errors[bench.name] = f"{type(exc).__name__}: {exc}"
            progress(f"{bench.name} failed: {type(exc).__name__}")
        else:
            result.by_benchmark[bench.name] = with_ratios(bench, figures)
        result.durations_s[bench.name] = time.perf_counter() - started
    return result
