"""How long the development stack waits before restarting a service that ended on its own.

Pure: the caller passes how long the service ran, so the schedule is tested without a clock.
The wait doubles after each crash in a row, up to a ceiling, so a service that dies at start-up
(a bad setting, a broken migration) does not spin the machine; a run that lasted long enough
counts as healthy, and the next crash starts the schedule again from the first wait.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
# A run this long was healthy: the crash after it is treated as the first one again.
HEALTHY_AFTER_S = 60.0


@dataclass
class Backoff:
    first_s: float = FIRST_DELAY_S
    ceiling_s: float = MAX_DELAY_S
    healthy_after_s: float = HEALTHY_AFTER_S
    crashes: int = 0  # in a row, since the last healthy run

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.ceiling_s or self.healthy_after_s <= 0:
            raise ValueError("need 0 < first_s <= ceiling_s and healthy_after_s > 0")

    def delay_after(self, ran_for_s: float) -> float:
        """The wait before the next start of a process that just ended after `ran_for_s`."""
        if ran_for_s >= self.healthy_after_s:
            self.crashes = 0
        delay = min(self.ceiling_s, self.first_s * 2.0 ** min(self.crashes, 62))
        self.crashes += 1
        return delay
