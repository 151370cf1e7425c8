"""Holes and repeats in a producer's audit sequence (`producer_seq`).

Records are keyed by subject, so one producer's records reach audit through several partitions
and arrive out of order. A number below the highest seen is therefore only *missing* for a grace
period; it becomes a gap once the grace period passes without it. A number seen twice under
different event ids is a repeat at once. Memory is bounded: at most `cap` missing numbers and
`cap` remembered event ids per producer, and at most `cap` producers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Finding:
    """`gap`: numbers expected_seq..got_seq-1 never arrived. `duplicate`: got_seq came again
    while expected_seq was next."""

    kind: Literal["gap", "duplicate"]
    producer: str
    expected_seq: int
    got_seq: int
    at: datetime


@dataclass
class _Producer:
    highest: int
    missing: dict[int, datetime] = field(default_factory=dict)
    seen: OrderedDict[int, str] = field(default_factory=OrderedDict)


class GapTracker:
    def __init__(
        self, grace_s: float = 60, cap: int = 10_000, clock: Callable[[], datetime] = _now
    ) -> None:
        self.grace = timedelta(seconds=grace_s)
        self._cap = cap
        self._clock = clock
        self._producers: OrderedDict[str, _Producer] = OrderedDict()

    def observe(
        self, producer: str, seq: int, event_id: str, at: datetime | None = None
    ) -> list[Finding]:
        """Note one record; returns a repeat, or a gap too large to wait for, right away."""
        at = at or self._clock()
        state = self._producers.get(producer)
        if state is None:
            # Audit keeps this in memory: after a restart, whatever comes first is the baseline.
            self._remember(producer, _Producer(highest=seq), seq, event_id)
            return []
        if seq in state.seen:
            if state.seen[seq] == event_id:
                return []
            return [Finding("duplicate", producer, state.highest + 1, seq, at)]
        findings: list[Finding] = []
        if seq > state.highest:
            findings = self._open(producer, state, seq, at)
            state.highest = seq
        elif state.missing.pop(seq, None) is None:
            # Older than anything remembered (or already reported missing): nothing to say.
            return []
        self._remember(producer, state, seq, event_id)
        return findings

    def due(self, now: datetime | None = None) -> list[Finding]:
        """Missing numbers whose grace period has passed, as runs; each is reported once."""
        now = now or self._clock()
        findings: list[Finding] = []
        for producer, state in self._producers.items():
            overdue: list[int] = []
            # Insertion order is arrival order, so the oldest come first.
            for seq, since in state.missing.items():
                if now - since < self.grace:
                    break
                overdue.append(seq)
            for seq in overdue:
                del state.missing[seq]
            findings.extend(
                Finding("gap", producer, start, end + 1, now) for start, end in _runs(overdue)
            )
        return findings

    def size(self) -> int:
        """Entries held: what the memory bound is about."""
        return sum(len(s.missing) + len(s.seen) for s in self._producers.values())

    def _open(self, producer: str, state: _Producer, seq: int, at: datetime) -> list[Finding]:
        first = state.highest + 1
        if seq - first > self._cap - len(state.missing):
            # Too many to track one by one: report the whole hole now rather than grow.
            return [Finding("gap", producer, first, seq, at)]
        state.missing.update(dict.fromkeys(range(first, seq), at))
        return []

    def _remember(self, producer: str, state: _Producer, seq: int, event_id: str) -> None:
        state.seen[seq] = event_id
        if len(state.seen) > self._cap:
            state.seen.popitem(last=False)
        self._producers[producer] = state
        self._producers.move_to_end(producer)
        if len(self._producers) > self._cap:
            self._producers.popitem(last=False)


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs
