"""Holes and repeats in a producer's sequence, judged from the store with a grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from moment_audit.domain.findings import verification_alert
from moment_audit.domain.gaps import (
    Hole,
    Repeat,
    Settled,
    baseline,
    gap_alert,
    grace_start,
    producer_name,
    repeat_alert,
    settle,
)
from moment_contracts.alerts import AlertRaised

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=60)
P = "/moment/identity"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_missing_moves_the_mark_to_the_highest() -> None:
    assert settle(4, 9, [], at(0), GRACE) == Settled([], 9)


def test_a_hole_within_its_grace_period_holds_the_mark_below_it() -> None:
    hole = Hole(after=6, before=8, since=at(0))
    assert settle(4, 9, [hole], at(59), GRACE) == Settled([], 6)


def test_a_hole_past_its_grace_period_is_reported_and_passed() -> None:
    hole = Hole(after=6, before=8, since=at(0))
    assert settle(4, 9, [hole], at(60), GRACE) == Settled([hole], 9)
    assert hole.missing == 1


def test_later_holes_wait_for_an_earlier_one_still_in_grace() -> None:
    # Arrival order can disagree with numbering (clocks of two instances): the mark never skips.
    early = Hole(after=2, before=4, since=at(30))
    late = Hole(after=6, before=9, since=at(0))
    assert settle(0, 12, [late, early], at(61), GRACE) == Settled([], 2)
    assert settle(0, 12, [late, early], at(90), GRACE) == Settled([early, late], 12)


def test_overdue_holes_are_reported_up_to_the_first_still_in_grace() -> None:
    first = Hole(after=2, before=4, since=at(0))
    second = Hole(after=5, before=7, since=at(10))
    third = Hole(after=8, before=10, since=at(50))
    assert settle(0, 12, [first, second, third], at(75), GRACE) == Settled([first, second], 8)


def test_a_new_producer_settles_its_baseline_after_the_grace_period() -> None:
    # Lower numbers may still be on their way: until the grace period passes, no baseline.
    assert baseline(5000, at(0), at(59), GRACE) is None
    assert baseline(5000, at(0), at(60), GRACE) == 4999
    assert baseline(1, at(0), at(60), GRACE) == 0


def test_grace_counts_from_the_consumer_back_when_audit_was_down_longer() -> None:
    # 8 was stored at 0; audit was then killed and its consumer had its partitions back at 61.
    # 7 was waiting on another partition all along: it is not overdue until 61 + 60.
    hole = Hole(after=6, before=8, since=at(0))
    assert grace_start(hole.since, at(61)) == at(61)
    assert settle(4, 9, [hole], at(61), GRACE, resumed=at(61)) == Settled([], 6)
    assert settle(4, 9, [hole], at(120), GRACE, resumed=at(61)) == Settled([], 6)
    assert settle(4, 9, [hole], at(121), GRACE, resumed=at(61)) == Settled([hole], 9)
    # Without the restart it would have been overdue at 60, as before.
    assert settle(4, 9, [hole], at(61), GRACE) == Settled([hole], 9)


def test_a_hole_known_after_the_consumer_came_back_counts_from_when_it_was_known() -> None:
    hole = Hole(after=6, before=8, since=at(100))
    assert grace_start(hole.since, at(61)) == at(100)
    assert settle(4, 9, [hole], at(159), GRACE, resumed=at(61)) == Settled([], 6)
    assert settle(4, 9, [hole], at(160), GRACE, resumed=at(61)) == Settled([hole], 9)


def test_a_new_producers_baseline_also_waits_for_the_consumer_back() -> None:
    assert baseline(5000, at(0), at(90), GRACE, resumed=at(61)) is None
    assert baseline(5000, at(0), at(121), GRACE, resumed=at(61)) == 4999


def test_a_gap_alert_names_the_run_and_its_size() -> None:
    alert = gap_alert(P, Hole(after=4, before=9, since=at(5)), at(70))
    assert (alert.rule, alert.severity, alert.count, alert.window_s) == ("gap", "high", 4, 0)
    assert alert.detail == "producer moment:identity: expected 5, got 9 (4 missing)"
    assert (alert.first_seen, alert.last_seen) == (at(5), at(70))
    assert (alert.subject_id, alert.actor_id, alert.source_ref) == (None, None, None)


def test_alert_ids_depend_on_the_finding_not_on_when_it_was_found() -> None:
    # A second sweep, a restart or another instance raises the same id: consumers dedupe on it.
    hole = Hole(after=4, before=9, since=at(5))
    assert gap_alert(P, hole, at(70)).alert_id == gap_alert(P, hole, at(7000)).alert_id
    moved = Hole(after=4, before=9, since=at(6))
    assert gap_alert(P, moved, at(70)).alert_id == gap_alert(P, hole, at(70)).alert_id
    other = gap_alert("/moment/consent", hole, at(70))
    assert other.alert_id != gap_alert(P, hole, at(70)).alert_id
    assert gap_alert(P, Hole(4, 8, at(5)), at(70)).alert_id != gap_alert(P, hole, at(70)).alert_id


def test_a_repeat_is_one_alert_per_number() -> None:
    twice = repeat_alert(P, Repeat(seq=7, copies=2, first_seen=at(0), last_seen=at(3)))
    thrice = repeat_alert(P, Repeat(seq=7, copies=3, first_seen=at(0), last_seen=at(9)))
    assert (twice.rule, twice.severity, twice.count) == ("gap", "medium", 2)
    assert twice.detail == "producer moment:identity: 7 repeated (2 records)"
    assert twice.alert_id == thrice.alert_id
    hole = gap_alert(P, Hole(after=6, before=8, since=at(0)), at(70))
    assert twice.alert_id != hole.alert_id


def test_alert_text_keeps_only_name_shaped_producers() -> None:
    assert producer_name("/moment/identity") == "moment:identity"
    assert producer_name("/someone@example.test/x y") == "?"


def test_verification_alerts_are_high_and_keyed_by_finding() -> None:
    one = verification_alert("0:3:DELETED:", "partition 0 seq 3: DELETED", at(0))
    again = verification_alert("0:3:DELETED:", "partition 0 seq 3: DELETED", at(3600))
    other = verification_alert("0:4:DELETED:", "partition 0 seq 4: DELETED", at(0))
    assert (one.rule, one.severity, one.count) == ("verification-failed", "high", 1)
    assert one.detail == "audit verification failed: partition 0 seq 3: DELETED"
    assert one.alert_id == again.alert_id != other.alert_id


def test_alerts_round_trip_through_the_contract() -> None:
    alert = gap_alert(P, Hole(after=1, before=3, since=at(0)), at(60))
    assert AlertRaised.model_validate_json(alert.model_dump_json()) == alert
