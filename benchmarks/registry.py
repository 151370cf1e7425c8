"""A benchmark: an async function from a BenchContext to named figures, and how to read them.

A benchmark declares which of its figures are compared with which baseline (the runner derives
the ratios) and the goals its figures are held to. New benchmarks are made with the `benchmark`
decorator and listed in benchmarks/catalogue.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from benchmarks.context import BenchContext

Figure = float | int
Figures = dict[str, Figure]
BenchmarkFn = Callable[["BenchContext"], Awaitable[Figures]]


@dataclass(frozen=True)
class Comparison:
    """`figure` was measured against `baseline`; `ratio` is figure / baseline."""

    figure: str
    baseline: str
    ratio: str


@dataclass(frozen=True)
class Goal:
    """A provisional target for one figure; `why` says what missing it would mean."""

    figure: str
    op: Literal[">=", "<="]
    target: float
    why: str

    def met(self, value: Figure) -> bool:
        return value >= self.target if self.op == ">=" else value <= self.target


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: BenchmarkFn
    comparisons: tuple[Comparison, ...] = ()
    goals: tuple[Goal, ...] = ()
    # A hard stop, so one stuck benchmark cannot hold the whole run.
    timeout_s: float = 90.0


def benchmark(
    name: str,
    *,
    comparisons: tuple[Comparison, ...] = (),
    goals: tuple[Goal, ...] = (),
    timeout_s: float = 90.0,
) -> Callable[[BenchmarkFn], Benchmark]:
    """Turn an async `(ctx) -> figures` function into a Benchmark."""

    def wrap(fn: BenchmarkFn) -> Benchmark:
        return Benchmark(name, fn, comparisons, goals, timeout_s)

    return wrap


def ratio(value: float, baseline: float) -> float:
    """value / baseline, or 0.0 when the baseline did not produce a figure."""
    return value / baseline if baseline > 0 else 0.0
