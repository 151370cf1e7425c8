"""Keeping the services of a development stack running: a service that ends on its own is
started again after a back-off wait, and the console says so.

Only services are restarted. Tansu and OpenBao hold everything in memory (topics and offsets;
keys, policies and the services' AppRole credentials), so a restarted one would come back empty
and the services could not carry on: when either ends, the stack stops instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rich.markup import escape

from moment_devstack.children import ServiceProcess, exit_code
from moment_devstack.restarts import Backoff


@dataclass
class Supervised:
    process: ServiceProcess
    started_at: float
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None  # set while waiting to start again
    announced: bool = True  # whether this start's readiness was reported


class ServiceSupervisor:
    """Polled by the stack's main loop; never blocks, so Ctrl-C is honoured at once."""

    def __init__(
        self,
        services: Iterable[ServiceProcess],
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self._say = say
        self._clock = clock
        now = clock()
        self.entries = [Supervised(s, now, backoff()) for s in services]

    def poll(self) -> None:
        now = self._clock()
        for entry in self.entries:
            if entry.restart_at is not None:
                if now >= entry.restart_at:
                    self._restart(entry, now)
                continue
            code = exit_code(entry.process)
            if code is not None:
                self._crashed(entry, code, now)
            elif not entry.announced and entry.process.ready():
                entry.announced = True
                self._say(f"{entry.process.name:<17} up again, pid {entry.process.pid}")

    def _crashed(self, entry: Supervised, code: int, now: float) -> None:
        ran_for = now - entry.started_at
        delay = entry.backoff.delay_after(ran_for)
        entry.restart_at = now + delay
        name, log = entry.process.name, escape(str(entry.process.log_path))
        self._say(
            f"[yellow]{name} exited with code {code} after {ran_for:.0f}s; "
            f"restarting in {delay:g}s[/]  log {log}"
        )

    def _restart(self, entry: Supervised, now: float) -> None:
        entry.restart_at = None
        entry.started_at = now
        entry.announced = False
        entry.process.start(append=True)
        self._say(f"{entry.process.name:<17} restarted, pid {entry.process.pid}")
