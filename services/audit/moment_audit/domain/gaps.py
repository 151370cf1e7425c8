"""Holes and repeats in a producer's audit sequence (`producer_seq`), judged from the store. Pure.

Records are keyed by subject, so one producer's records reach audit through several partitions
and arrive out of order. A number below the highest stored is therefore only *missing* for a grace
period, counted from when audit stored the first record above it; once that has passed it is a
gap, reported once. A number stored under two event ids is a repeat (the store keeps one record
per event id, so a redelivery is not one).

Per producer the watch keeps a contiguous mark: every number up to it is stored or was reported
missing. It looks only above the mark, so a sweep costs what arrived since the last one (plus what
is still within its grace period), not the size of the store; and the mark is in the database, so
a restart neither forgets a hole nor reports one twice.

The grace period also counts from when audit's consumer was last back (`resumed`: its
partitions assigned after a start or a rebalance), since only from then could the missing number
have arrived: a service down for longer than the grace period must not call a hole overdue the
moment it restarts, before it has read what was waiting for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from moment_audit.domain.findings import finding_alert
from moment_audit.domain.rules import Rule, masked
from moment_contracts.alerts import AlertRaised


@dataclass(frozen=True)
class Hole:
    """Numbers after+1 .. before-1 are missing; audit has known so since `since`."""

    after: int
    before: int
    since: datetime

    @property
    def missing(self) -> int:
        return self.before - self.after - 1


@dataclass(frozen=True)
class Repeat:
    """`seq` is stored `copies` times, under as many event ids."""

    seq: int
    copies: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Settled:
    """What a sweep reports for one producer, and where its contiguous mark moves to."""

    overdue: list[Hole]
    contiguous: int


def grace_start(known_since: datetime, resumed: datetime | None) -> datetime:
    """When a hole's grace period starts: when audit knew of it, or when its consumer was last
    back if that is later (`None`: no consumer to wait for, as in a verification alone)."""
    return known_since if resumed is None else max(known_since, resumed)


def baseline(
    lowest: int,
    stored_at: datetime,
    now: datetime,
    grace: timedelta,
    resumed: datetime | None = None,
) -> int | None:
    """The contiguous mark of a producer audit has not followed before: just below the lowest
    number stored, once that number has been stored for the grace period (lower ones may still
    be on their way). Numbers before it are not called missing: the producer may have numbered
    events before this store kept the numbers."""
    return lowest - 1 if now - grace_start(stored_at, resumed) >= grace else None


def settle(
    contiguous: int,
    highest: int,
    holes: Iterable[Hole],
    now: datetime,
    grace: timedelta,
    resumed: datetime | None = None,
) -> Settled:
    """The holes above `contiguous` whose grace period has run out, and the new mark: just
    below the first hole still within its grace period, else the highest number stored."""
    overdue: list[Hole] = []
    for hole in sorted(holes, key=lambda h: h.after):
        if now - grace_start(hole.since, resumed) < grace:
            # Later holes wait too, even if overdue: the mark only moves over what is settled.
            return Settled(overdue, hole.after)
        overdue.append(hole)
    return Settled(overdue, max(contiguous, highest))


def producer_name(source: str) -> str:
    """A CloudEvents source is a path; alert text keeps only name-shaped values."""
    return masked(source.strip("/").replace("/", ":"))


def gap_alert(source: str, hole: Hole, now: datetime) -> AlertRaised:
    expected = hole.after + 1
    detail = (
        f"producer {producer_name(source)}: expected {expected}, got {hole.before} "
        f"({hole.missing} missing)"
    )
    return finding_alert(
        Rule.GAP,
        "high",
        f"{source}:{expected}:{hole.before}",
        detail,
        count=hole.missing,
        first_seen=hole.since,
        last_seen=now,
    )


def repeat_alert(source: str, repeat: Repeat) -> AlertRaised:
    """One per repeated number, however many copies it comes to."""
    detail = f"producer {producer_name(source)}: {repeat.seq} repeated ({repeat.copies} records)"
    return finding_alert(
        Rule.GAP,
        "medium",
        f"{source}:{repeat.seq}:repeated",
        detail,
        count=repeat.copies,
        first_seen=repeat.first_seen,
        last_seen=repeat.last_seen,
    )
