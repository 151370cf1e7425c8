"""`make demo` end to end: against a real `make run` stack, the storefront simulation goes through
every step as the privacy policy says, prints the typed error codes and no secret, and leaves no
personal value in any of the stack's logs; the stack still stops cleanly afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moment_devstack.processes import free_port
from tests.e2e.test_make_run import (
    RunningStack,
    clean_up,
    launch,
    stack_environment,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.slow

DEMO_TIMEOUT_S = 60.0
STAFF_TIMEOUT_S = 30.0
STEPS = (
    "register customer A (Arabic name",
    "register customer B (English name",
    "customer A logs in by e-mail",
    "customer B logs in with a wrong password",
    "an unknown account logs in",
    "uniform failure",
    "customer B keeps guessing",
    "customer B tries the right password while locked",
    "customer B starts password recovery",
    "customer B answers the question wrongly",
    "customer B answers rightly and sets a new password",
    "customer B logs in with the new password",
    "support-operator logs in (staff)",
    "operator reads customer A: name",
    "operator reads customer A's name with no purpose",
    "operator reads customer A: age, recovery question",
    "customer A exports their own data",
    "privacy-officer logs in (staff)",
    "privacy-officer erases customer A",
    "operator reads erased customer A's name",
)
CODES = (
    "refused login-failed",
    "refused locked-out, retry after",
    "refused recovery-failed",
    "refused access-denied",
    "refused not-found",
    "refused unauthorised",
)
NAMES = ("ليلى الحسيني", "Oliver Bennett")


def run_demo(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moment_devstack", "demo"],
        env=stack_environment(run_dir),
        cwd=run_dir.parent,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )


def wait_for_staff(run_dir: Path) -> None:
    staff = run_dir / "creds" / "demo-staff.json"
    deadline = time.monotonic() + STAFF_TIMEOUT_S
    while not staff.exists():
        assert time.monotonic() < deadline, f"{staff} was never written"
        time.sleep(0.1)


def canaries(run_dir: Path) -> tuple[list[str], list[str]]:
    """Secrets (never anywhere) and personal values (never in a log; the demo shows names)."""
    creds = run_dir / "creds"
    customers = json.loads((creds / "demo-customers.json").read_text(encoding="utf-8"))
    staff = json.loads((creds / "demo-staff.json").read_text(encoding="utf-8"))
    secrets = [value for fields in customers.values() for value in fields.values()]
    secrets += [fields["password"] for fields in staff.values()]
    return secrets, [*secrets, *NAMES]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    run_dir = tmp_path_factory.mktemp("make-demo") / ".run"
    running = launch(run_dir, stack_environment(run_dir))
    try:
        wait_ready(running)
        yield running
    finally:
        clean_up(running)


def test_demo_without_a_running_stack_exits_2(tmp_path: Path) -> None:
    run_dir = tmp_path / ".run"
    run_dir.mkdir()
    missing = run_demo(run_dir)
    assert missing.returncode == 2, missing.stderr
    assert "make run" in missing.stderr
    # A stack killed without cleaning up leaves its file behind, pointing at a closed port.
    (run_dir / "stack.json").write_text(json.dumps({"kafka": f"127.0.0.1:{free_port()}"}))
    stale = run_demo(run_dir)
    assert stale.returncode == 2, stale.stderr
    assert "nothing listens" in stale.stderr


def test_demo_runs_every_step_without_leaking(stack: RunningStack) -> None:
    assert (stack.run_dir / "stack.json").stat().st_mode & 0o777 == 0o644
    wait_for_staff(stack.run_dir)
    done = run_demo(stack.run_dir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for step in (*STEPS, *CODES, *NAMES):
        assert step in output, f"{step!r} missing from:\n{output}"
    assert "UNEXPECTED" not in output
    assert (stack.run_dir / "creds" / "demo-customers.json").stat().st_mode & 0o777 == 0o600

    secrets, personal = canaries(stack.run_dir)
    assert not [s for s in secrets if s in output], "a secret reached the demo's output"
    logs = {
        log.name: log.read_text(encoding="utf-8", errors="replace")
        for log in stack.run_dir.glob("logs/*.log")
    }
    logs["make run output"] = stack.text()
    assert {"identity.log", "consent.log", "audit.log"} <= logs.keys()
    for name, text in logs.items():
        assert not [p for p in personal if p in text], f"a personal value reached {name}"

    assert stop(stack, signal.SIGTERM) == 0, stack.text()
    assert not (stack.run_dir / "stack.json").exists()
