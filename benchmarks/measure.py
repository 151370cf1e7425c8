"""Bounded measuring loops: a fixed number of operations, cut short by a time budget.

Throughput runs `concurrency` workers pulling operation numbers from a shared counter; latency runs
one operation at a time. Both stop starting new operations once the budget is spent, and report
how many completed, so a slow machine gives a smaller sample rather than a hung run.

The `interleaved_*` helpers measure a figure and its baselines in rounds of alternating order
(A B, B A, ...), so drift on a shared machine (other processes, database checkpoints) falls on
every side alike rather than on whichever ran last.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

Operation = Callable[[int], Awaitable[object]]


@dataclass(frozen=True)
class Throughput:
    done: int
    elapsed_s: float

    @property
    def per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def throughput(
    operation: Operation, *, count: int, concurrency: int, budget_s: float
) -> Throughput:
    """Run operation(0..count-1), `concurrency` at a time; start no new one past the budget."""
    next_index = 0
    done = 0
    deadline = time.perf_counter() + budget_s

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            await operation(index)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return Throughput(done, time.perf_counter() - started)


async def latencies_ms(operation: Operation, *, count: int, budget_s: float) -> list[float]:
    """Run operations one after another and return each one's duration in milliseconds."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    for index in range(count):
        if time.perf_counter() >= deadline:
            break
        started = time.perf_counter()
        await operation(index)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _offset(operation: Operation, base: int) -> Operation:
    async def shifted(index: int) -> object:
        return await operation(base + index)

    return shifted


def _round_order(round_index: int, sides: int) -> list[int]:
    order = list(range(sides))
    return order if round_index % 2 == 0 else order[::-1]


async def interleaved_throughput(
    operations: Sequence[Operation],
    *,
    count: int,
    concurrency: int | Sequence[int],
    budget_s: float,
    rounds: int = 4,
) -> list[Throughput]:
    """Throughput of each operation, `count` runs each, split into rounds of alternating order.

    `concurrency` is one value for all, or one per operation.
    """
    per_round = max(1, math.ceil(count / rounds))
    in_flight = [concurrency] * len(operations) if isinstance(concurrency, int) else concurrency
    done, elapsed = [0] * len(operations), [0.0] * len(operations)
    for round_index in range(rounds):
        size = min(per_round, count - round_index * per_round)
        for side in _round_order(round_index, len(operations)) if size > 0 else []:
            result = await throughput(
                _offset(operations[side], round_index * per_round),
                count=size,
                concurrency=in_flight[side],
                budget_s=budget_s / rounds,
            )
            done[side] += result.done
            elapsed[side] += result.elapsed_s
    return [Throughput(d, e) for d, e in zip(done, elapsed, strict=True)]


async def interleaved_latencies_ms(
    operations: Sequence[Operation], *, count: int, budget_s: float, rounds: int = 4
) -> list[list[float]]:
    """Sequential latencies of each operation, `count` each, in rounds of alternating order."""
    per_round = max(1, math.ceil(count / rounds))
    samples: list[list[float]] = [[] for _ in operations]
    for round_index in range(rounds):
        size = min(per_round, count - round_index * per_round)
        for side in _round_order(round_index, len(operations)):
            samples[side].extend(
                await latencies_ms(
                    _offset(operations[side], round_index * per_round),
                    count=size,
                    budget_s=budget_s / rounds,
                )
            )
    return samples


def percentile(samples: list[float], pct: int) -> float:
    """The pct-th percentile (1..99), interpolated; a lone sample is its own percentile."""
    if not samples:
        return 0.0
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def rounded(value: float, digits: int = 3) -> float:
    """`value` to `digits` significant figures: more would claim a precision runs do not have."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def rate_and_latency_figures(
    names: Iterable[str],
    rates: Sequence[Throughput],
    samples: Sequence[list[float]],
    *,
    expected: int,
    notes: list[str],
) -> dict[str, float]:
    """`<name>_per_s`, `_p50_ms` and `_p99_ms` for each measured side, noting any that ran out
    of time before doing all `expected` operations (its figure then covers fewer)."""
    figures: dict[str, float] = {}
    for name, rate, ms in zip(names, rates, samples, strict=True):
        if rate.done < expected:
            notes.append(f"{name}: time budget reached after {rate.done} operations")
        figures |= {
            f"{name}_per_s": rate.per_s,
            f"{name}_p50_ms": percentile(ms, 50),
            f"{name}_p99_ms": percentile(ms, 99),
        }
    return figures
