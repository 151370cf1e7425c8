"""The service processes of the stack, and stopping any of its children by process group.

Every child runs in its own session, so a terminal's Ctrl-C reaches only the stack, which then
stops the children in order; stopping by process group also takes anything a child started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from moment_devstack.stack import StackError

READY_MARKER = b"service ready"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_POLL_S = 0.1


class Child(Protocol):
    """What the stack needs of a child: ManagedProcess (infrastructure) and ServiceProcess."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None


class ChildExited(StackError):
    """A child process ended while the stack expected it to run."""

    def __init__(self, child: Child, code: int) -> None:
        super().__init__(f"{child.name} exited unexpectedly with code {code}")
        self.child = child
        self.code = code


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


@dataclass
class ServiceProcess:
    """One Moment service, started from its console script with its settings in the environment."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    # Where this start's output begins in the log: a restart appends, keeping the crash's lines.
    log_start: int = 0

    def start(self, *, append: bool = False) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_start = self.log_path.stat().st_size if append and self.log_path.exists() else 0
        with self.log_path.open("ab" if append else "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def ready(self) -> bool:
        """Whether this start of the service logged that it is ready."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return READY_MARKER in log.read()


def exit_code(child: Child) -> int | None:
    return None if child.proc is None else child.proc.poll()


def check_running(children: Iterable[Child]) -> None:
    for child in children:
        code = exit_code(child)
        if code is not None:
            raise ChildExited(child, code)


def wait_until_ready(
    services: Sequence[ServiceProcess],
    stop_requested: Callable[[], bool],
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Block until every service logged "service ready"; raise if one exits or time runs out."""
    deadline = time.monotonic() + timeout
    waiting = list(services)
    while waiting:
        check_running(waiting)
        if stop_requested():
            raise StopRequested
        waiting = [service for service in waiting if not service.ready()]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(service.name for service in waiting)
            raise StackError(f"{names} did not become ready within {timeout:.0f}s")
        if waiting:
            time.sleep(_POLL_S)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_children(children: Iterable[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM each child's process group together, then SIGKILL whatever outlives the timeout."""
    running = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT_S)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a child's log, to show why it failed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log was written)"
    return "\n".join(text.splitlines()[-lines:])
