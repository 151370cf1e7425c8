"""The development stack's restart schedule: doubling waits up to a ceiling, reset by a healthy
run."""

from __future__ import annotations

import pytest

from moment_devstack.restarts import Backoff


def test_crashes_in_a_row_double_the_wait_up_to_the_ceiling() -> None:
    backoff = Backoff(first_s=1.0, ceiling_s=30.0, healthy_after_s=60.0)
    waits = [backoff.delay_after(ran_for_s=2.0) for _ in range(8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_healthy_run_starts_the_schedule_again() -> None:
    backoff = Backoff(first_s=1.0, ceiling_s=30.0, healthy_after_s=60.0)
    for _ in range(6):
        backoff.delay_after(ran_for_s=1.0)
    assert backoff.delay_after(ran_for_s=60.0) == 1.0
    assert backoff.delay_after(ran_for_s=59.9) == 2.0


def test_the_defaults_are_one_second_doubling_to_thirty() -> None:
    backoff = Backoff()
    assert [backoff.delay_after(0.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_after(backoff.healthy_after_s) == 1


def test_a_long_crash_loop_never_overflows() -> None:
    backoff = Backoff()
    for _ in range(2000):
        assert backoff.delay_after(0.0) <= 30.0


@pytest.mark.parametrize(
    ("first", "ceiling", "healthy"), [(0.0, 30.0, 60.0), (40.0, 30.0, 60.0), (1.0, 30.0, 0.0)]
)
def test_a_nonsense_schedule_is_refused(first: float, ceiling: float, healthy: float) -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s=first, ceiling_s=ceiling, healthy_after_s=healthy)
