"""`python -m moment_devstack run` as a developer runs it, over real Tansu, OpenBao, PostgreSQL and
the three services: a service killed with SIGKILL is restarted while the stack keeps running, a
second run in the same folder and on the same (kept) databases creates the demo staff again with
the recorded passwords, and the broker dying stops everything."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from moment_devstack.databases import DATABASE_URL_VARIABLE, PREFIX_VARIABLE
from moment_devstack.demo_set import DEMO_FILE, DEMO_ROLES
from moment_devstack.postgres import drop_database
from moment_devstack.stack import (
    KAFKA_PORT_VARIABLE,
    RUN_DIR_VARIABLE,
    SERVICES,
    VAULT_PORT_VARIABLE,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
# Generous: on a loaded 2-core machine three services, OpenBao and the demo set take a while.
START_DEADLINE_S = 300.0
DEADLINE_S = 120.0


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = DEADLINE_S, after: int = 0) -> re.Match[str]:
        """The first line matching `pattern` printed after `after` characters of output."""
        deadline = time.monotonic() + timeout
        while True:
            if found := re.compile(pattern, re.MULTILINE).search(self.output(), after):
                return found
            code = self.proc.poll()
            assert code is None, f"the stack exited ({code}): {self.err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.output()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM to the stack's own PID, as Ctrl-C would; the stack stops its children."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def start_stack(run_dir: Path, name: str, database: dict[str, str]) -> RunningStack:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (KAFKA_PORT_VARIABLE, VAULT_PORT_VARIABLE)
        and not key.endswith("_DATABASE__URL")
    }
    env |= {RUN_DIR_VARIABLE: str(run_dir), "PYTHONUNBUFFERED": "1"} | database
    out, err = run_dir.parent / f"{name}.out", run_dir.parent / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moment_devstack", "run"],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return RunningStack(proc, out, err)


@pytest.fixture
def stacks() -> Iterator[list[RunningStack]]:
    started: list[RunningStack] = []
    try:
        yield started
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture
def database(postgres_admin_url: str) -> Iterator[dict[str, str]]:
    """The stack's settings for uniquely named PostgreSQL databases, dropped afterwards."""
    prefix = f"test_{uuid.uuid4().hex[:10]}"
    yield {DATABASE_URL_VARIABLE: postgres_admin_url, PREFIX_VARIABLE: prefix}
    for service in SERVICES:
        # A thread of its own, so the session's event loop is left alone.
        drop = drop_database(postgres_admin_url, f"moment_{prefix}_{service}")
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, drop).result()


def service_pids(stack: RunningStack) -> dict[str, int]:
    found = re.findall(r"^moment: (\w+)\s+up, pid (\d+)", stack.output(), re.MULTILINE)
    return {name: int(pid) for name, pid in found}


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_a_killed_service_is_restarted_a_rerun_converges_and_the_broker_dying_stops_all(
    tmp_path: Path, database: dict[str, str], stacks: list[RunningStack]
) -> None:
    run_dir = tmp_path / "run"
    stacks.append(first := start_stack(run_dir, "first", database))
    first.wait_for(r"demo staff\s+5 accounts in", START_DEADLINE_S)
    first.wait_for(r"ready — \d+ services up", START_DEADLINE_S)
    pids = service_pids(first)
    assert set(pids) == {"identity", "consent", "audit"}
    recorded = json.loads((run_dir / "creds" / DEMO_FILE).read_text())
    assert set(recorded) == set(DEMO_ROLES)
    assert all(account["staff_id"].startswith("staff-") for account in recorded.values())

    os.kill(pids["identity"], signal.SIGKILL)
    first.wait_for(r"identity exited with code -9 after \d+s; restarting in 1s")
    again = first.wait_for(r"identity\s+up again, pid (\d+)", START_DEADLINE_S)
    assert int(again[1]) != pids["identity"]
    assert first.proc.poll() is None
    assert not any(gone(pids[name]) for name in ("consent", "audit"))
    assert first.stop() == 0

    stacks.append(second := start_stack(run_dir, "second", database))
    second.wait_for(r"demo staff\s+5 accounts in", START_DEADLINE_S)
    second.wait_for(r"ready — \d+ services up", START_DEADLINE_S)
    rerun = json.loads((run_dir / "creds" / DEMO_FILE).read_text())
    assert {r: a["password"] for r, a in rerun.items()} == {
        r: a["password"] for r, a in recorded.items()
    }
    broker = int(second.wait_for(r"kafka \(tansu\)\s+bootstrap \S+, pid (\d+)")[1])
    services = service_pids(second)
    os.kill(broker, signal.SIGKILL)
    assert second.proc.wait(DEADLINE_S) == 1
    assert "kafka (tansu) exited unexpectedly" in second.err.read_text()
    assert all(gone(pid) for pid in services.values())
