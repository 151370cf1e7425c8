"""`make run` end to end: the real stack starts, says where it listens, and stops leaving nothing.

Two stacks are launched side by side to keep the suite fast: one on the default SQLite files, one
on PostgreSQL through DATABASE_URL (with uniquely named databases, dropped afterwards, so a
developer's own `make run` databases are never touched). One is stopped with SIGTERM, the other
with SIGINT, as Ctrl-C would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import psutil
import pytest
from sqlalchemy.engine import make_url

from moment_devstack.postgres import drop_database
from moment_devstack.processes import port_open

pytestmark = pytest.mark.slow

SERVICES = ("identity", "consent", "audit")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
READY_LINE = "moment: ready"
LISTENING = re.compile(r"(?:bootstrap |http://)127\.0\.0\.1:(\d+)")
# Variables that would steer the stack away from what each test asks for.
_STEERING = ("DATABASE_URL", "MOMENT_DATABASE_PREFIX", "MOMENT_KAFKA_PORT", "MOMENT_VAULT_PORT")

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    # A thread of its own, so the session's event loop is left alone.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class RunningStack:
    """A `python -m moment_devstack run` child, its output, and what it started."""

    run_dir: Path
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    children: list[psutil.Process] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            if READY_LINE in line:
                self.ready.set()

    def text(self) -> str:
        return "\n".join(self.output)

    def ports(self) -> list[int]:
        return [int(port) for port in LISTENING.findall(self.text())]

    def database_lines(self) -> dict[str, str]:
        return {s: line for line in self.output for s in SERVICES if f"{s} database" in line}

    def leftovers(self) -> list[psutil.Process]:
        return [child for child in self.children if alive(child)]


def alive(process: psutil.Process) -> bool:
    # is_running() also checks the start time, so a reused PID does not count.
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def stack_environment(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _STEERING and not key.endswith("_DATABASE__URL")
    }
    return env | {"MOMENT_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1"} | extra


def launch(run_dir: Path, env: dict[str, str]) -> RunningStack:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moment_devstack", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=run_dir.parent,
    )
    stack = RunningStack(run_dir, proc)
    threading.Thread(target=stack.read, daemon=True).start()
    return stack


def wait_ready(stack: RunningStack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not stack.ready.wait(0.2):
        if stack.proc.poll() is not None or time.monotonic() > deadline:
            time.sleep(0.2)  # let the reader catch the last lines
            pytest.fail(f"the stack did not get ready:\n{stack.text()}")
    stack.children = psutil.Process(stack.proc.pid).children(recursive=True)


def stop(stack: RunningStack, sig: signal.Signals) -> int:
    stack.proc.send_signal(sig)
    code = stack.proc.wait(STOP_TIMEOUT_S)
    time.sleep(0.1)  # the reader thread drains the last lines
    return code


def clean_up(stack: RunningStack) -> None:
    """After a failed test: stop the stack, then anything it started that is still there."""
    if stack.proc.poll() is None:
        stack.proc.terminate()
        try:
            stack.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
            stack.proc.wait()
    for child in stack.leftovers():
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


async def drop_all(admin_url: str, names: list[str]) -> None:
    for name in names:
        await drop_database(admin_url, name)


async def existing_databases(admin_url: str, prefix: str) -> set[str]:
    plain = make_url(admin_url).set(drivername="postgresql")
    connection = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"moment_{prefix}_%"
        )
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


@dataclass
class Stacks:
    sqlite: RunningStack
    postgres: RunningStack
    admin_url: str
    prefix: str


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str) -> Iterator[Stacks]:
    prefix = f"test_{uuid.uuid4().hex[:10]}"
    sqlite_dir = tmp_path_factory.mktemp("make-run-sqlite") / ".run"
    postgres_dir = tmp_path_factory.mktemp("make-run-postgres") / ".run"
    both = Stacks(
        sqlite=launch(sqlite_dir, stack_environment(sqlite_dir)),
        postgres=launch(
            postgres_dir,
            stack_environment(
                postgres_dir, DATABASE_URL=postgres_admin_url, MOMENT_DATABASE_PREFIX=prefix
            ),
        ),
        admin_url=postgres_admin_url,
        prefix=prefix,
    )
    try:
        wait_ready(both.sqlite)
        wait_ready(both.postgres)
        yield both
    finally:
        clean_up(both.sqlite)
        clean_up(both.postgres)
        run_async(drop_all(postgres_admin_url, [f"moment_{prefix}_{s}" for s in SERVICES]))


def assert_started(stack: RunningStack) -> list[int]:
    ports = stack.ports()
    assert len(ports) == 2, stack.text()  # Kafka bootstrap and Vault
    assert all(port_open(port) for port in ports)
    commands = [" ".join(child.cmdline()) for child in stack.children]
    for service in SERVICES:
        assert any(f"moment-{service} run" in command for command in commands), commands
    assert len(stack.children) >= 5  # Tansu, OpenBao and the three services
    token_file = stack.run_dir / "creds" / "root-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.read_text() not in stack.text()
    assert sum(READY_LINE in line for line in stack.output) == 1
    return ports


def assert_stopped_cleanly(stack: RunningStack, ports: list[int], code: int) -> None:
    assert code == 0, stack.text()
    assert stack.leftovers() == []
    assert not any(port_open(port) for port in ports)
    assert stack.output[-1].endswith("stopped"), stack.text()


def test_sqlite_stack_starts_and_stops_on_sigterm(stacks: Stacks) -> None:
    stack = stacks.sqlite
    ports = assert_started(stack)
    databases = stack.database_lines()
    for service in SERVICES:
        database = stack.run_dir / "data" / f"{service}.db"
        assert f"sqlite:///{database}" in databases[service]
        assert database.is_file()
    assert_stopped_cleanly(stack, ports, stop(stack, signal.SIGTERM))


def test_postgres_stack_starts_and_stops_on_ctrl_c(stacks: Stacks) -> None:
    stack = stacks.postgres
    ports = assert_started(stack)
    databases = stack.database_lines()
    expected = {f"moment_{stacks.prefix}_{service}" for service in SERVICES}
    for service in SERVICES:
        assert "postgresql://" in databases[service]
        assert f"/moment_{stacks.prefix}_{service}" in databases[service]
    assert run_async(existing_databases(stacks.admin_url, stacks.prefix)) == expected
    assert not list((stack.run_dir / "data").glob("*.db"))
    assert_stopped_cleanly(stack, ports, stop(stack, signal.SIGINT))
