"""The stack's supervisor over real processes: a service killed with SIGKILL is started again,
and the others keep running."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moment_devstack.children import ServiceProcess, stop_children
from moment_devstack.restarts import Backoff
from moment_devstack.supervisor import ServiceSupervisor

pytestmark = pytest.mark.slow
DEADLINE_S = 60.0
# Stands in for a service: says it is ready as the real ones do, then waits to be stopped.
FAKE_SERVICE = "import sys, time; print('service ready', flush=True); time.sleep(3600)"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    started = [
        ServiceProcess(name, [sys.executable, "-c", FAKE_SERVICE], tmp_path / f"{name}.log")
        for name in ("first", "second")
    ]
    try:
        for service in started:
            service.start()
        yield started
    finally:
        stop_children(started)


def poll_until(supervisor: ServiceSupervisor, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        supervisor.poll()
        time.sleep(0.05)


def test_a_killed_service_is_restarted_and_the_others_keep_running(
    services: list[ServiceProcess],
) -> None:
    said: list[str] = []
    supervisor = ServiceSupervisor(services, said.append, backoff=lambda: Backoff(first_s=0.2))
    first, second = services
    poll_until(supervisor, lambda: first.ready() and second.ready())
    old_pid, other_pid = first.pid, second.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    poll_until(supervisor, lambda: any("up again" in line for line in said))
    assert first.pid != old_pid
    assert first.proc is not None
    assert first.proc.poll() is None
    assert second.proc is not None
    assert (second.pid, second.proc.poll()) == (other_pid, None)
    crash = "first exited with code -9"
    assert any(crash in line and "restarting in 0.2s" in line for line in said)
    assert any(f"restarted, pid {first.pid}" in line for line in said)
    # The crash's output is kept: the restart appends to the same log.
    assert first.log_path.read_text().count("service ready") == 2


def test_crashing_again_at_once_waits_longer(services: list[ServiceProcess]) -> None:
    said: list[str] = []
    supervisor = ServiceSupervisor(services, said.append, backoff=lambda: Backoff(first_s=0.2))
    first = services[0]
    for _ in range(2):
        poll_until(supervisor, first.ready)
        pid = first.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        poll_until(supervisor, lambda: first.pid != pid)  # noqa: B023 - used before the next turn
    waits = [line.split("restarting in ")[1].split("s")[0] for line in said if "restarting" in line]
    assert waits == ["0.2", "0.4"]
