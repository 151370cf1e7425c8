"""Holes and repeats in a producer's sequence, with a grace period for late arrivals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moment_audit.domain.gaps import Finding, GapTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = "/moment/identity"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(tracker: GapTracker, *seqs: int, when: float = 0) -> list[Finding]:
    return [f for seq in seqs for f in tracker.observe(P, seq, f"event-{seq}", at(when))]


def test_in_order_raises_nothing() -> None:
    tracker = GapTracker(grace_s=60)
    assert feed(tracker, 1, 2, 3, 4) == []
    assert tracker.due(at(3600)) == []


def test_out_of_order_within_the_grace_period_raises_nothing() -> None:
    tracker = GapTracker(grace_s=60)
    assert feed(tracker, 1, 4, 2) == []
    assert tracker.due(at(30)) == []
    assert feed(tracker, 3, when=59) == []
    assert tracker.due(at(3600)) == []


def test_a_number_missing_past_the_grace_period_is_one_gap() -> None:
    tracker = GapTracker(grace_s=60)
    feed(tracker, 1, 2, 5, 6)
    assert tracker.due(at(59)) == []
    [gap] = tracker.due(at(60))
    assert (gap.kind, gap.producer, gap.expected_seq, gap.got_seq) == ("gap", P, 3, 5)
    assert tracker.due(at(120)) == [], "a gap is reported once"
    assert feed(tracker, 3, when=121) == [], "a straggler after the report is not news"


def test_separate_holes_are_separate_gaps() -> None:
    tracker = GapTracker(grace_s=10)
    feed(tracker, 1, 3, 6)
    gaps = tracker.due(at(10))
    assert [(g.expected_seq, g.got_seq) for g in gaps] == [(2, 3), (4, 6)]


def test_a_repeated_number_is_a_duplicate_at_once() -> None:
    tracker = GapTracker(grace_s=60)
    feed(tracker, 1, 2, 3)
    [dup] = tracker.observe(P, 2, "another-event", at(1))
    assert (dup.kind, dup.expected_seq, dup.got_seq) == ("duplicate", 4, 2)
    assert tracker.observe(P, 2, "event-2", at(1)) == [], "a redelivery is not a repeat"


def test_producers_are_counted_apart() -> None:
    tracker = GapTracker(grace_s=0)
    assert tracker.observe("/a", 1, "a1", T0) == []
    assert tracker.observe("/b", 1, "b1", T0) == []
    assert tracker.observe("/a", 2, "a2", T0) == []
    assert tracker.due(at(1)) == []


def test_the_first_number_seen_is_the_baseline() -> None:
    # After a restart audit has no memory of earlier numbers: it must not call them all missing.
    tracker = GapTracker(grace_s=0)
    assert feed(tracker, 5000, 5001) == []
    assert tracker.due(at(1)) == []


def test_memory_is_bounded() -> None:
    tracker = GapTracker(grace_s=60, cap=100)
    feed(tracker, *range(1, 1000))
    assert tracker.size() <= 100
    [gap] = feed(tracker, 5000)
    assert (gap.kind, gap.expected_seq, gap.got_seq) == ("gap", 1000, 5000)
    assert tracker.size() <= 200
    for n in range(300):
        tracker.observe(f"/producer-{n}", 1, "x", T0)
    assert tracker.size() <= 200
