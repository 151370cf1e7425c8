"""Development only: one staff account per role, so the staff-facing flows can be tried at once.

Accounts are made through the identity service's own operator command (`moment-identity staff
ensure`, one process for all of them), run with the stack's identity settings: shared code never
imports a service. Generated passwords go to a 0600 file in the run's credentials folder and are
never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from moment_devstack.stack import service_script

DEMO_ROLES = ("support-operator", "privacy-officer", "legal-counsel", "security-analyst", "admin")
DEMO_FILE = "demo-staff.json"
# The identity settings of the running stack, so `demo-set` can run again on its own.
IDENTITY_ENV_FILE = "identity-env.json"
# Generous: one process creates every account, and cutting it leaves nothing half-done (the
# passwords are recorded first and `staff ensure` converges), so it only guards against a hang.
COMMAND_TIMEOUT_S = 300.0


class DemoSetError(RuntimeError):
    """The demo staff accounts could not be created. Messages never hold a password."""


@dataclass(frozen=True)
class DemoAccount:
    role: str
    username: str
    password: str  # never printed; kept only in the 0600 file
    staff_id: str

    def __repr__(self) -> str:
        return f"DemoAccount(role={self.role!r}, username={self.username!r})"


def demo_username(role: str) -> str:
    return f"demo-{role}"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the start, so the secret is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def remember_identity_environment(creds_dir: Path, environment: Mapping[str, str]) -> Path:
    """Keep identity's settings (they name credential files and may hold a database password)."""
    path = creds_dir / IDENTITY_ENV_FILE
    write_private(path, json.dumps(dict(environment), indent=2, sort_keys=True))
    return path


def load_identity_environment(creds_dir: Path) -> dict[str, str]:
    path = creds_dir / IDENTITY_ENV_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoSetError(f"{path} is missing: start the stack with `make run` first") from None
    except ValueError:
        raise DemoSetError(f"{path} is not valid JSON") from None
    return {str(key): str(value) for key, value in data.items()}


def _known_accounts(path: Path) -> dict[str, DemoAccount]:
    """Accounts recorded by an earlier demo set of this run folder: their passwords are reused."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {role: DemoAccount(role=role, **fields) for role, fields in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _record(path: Path, accounts: Sequence[DemoAccount]) -> None:
    document = {
        a.role: {"username": a.username, "password": a.password, "staff_id": a.staff_id}
        for a in accounts
    }
    write_private(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def planned_accounts(known: Mapping[str, DemoAccount]) -> list[DemoAccount]:
    """One account per role: the recorded password where there is one, else a new one."""
    planned = []
    for role in DEMO_ROLES:
        old = known.get(role)
        if old is not None and old.username == demo_username(role) and old.password:
            planned.append(old)
        else:
            planned.append(DemoAccount(role, demo_username(role), secrets.token_urlsafe(18), ""))
    return planned


def _ensure(
    script: Path, environment: Mapping[str, str], planned: Sequence[DemoAccount]
) -> dict[str, str]:
    """Run `staff ensure` once for every account; {username: staff id}."""
    lines = [
        json.dumps({"username": a.username, "password": a.password, "roles": [a.role]})
        for a in planned
    ]
    try:
        done = subprocess.run(
            [str(script), "staff", "ensure"],
            input="\n".join(lines) + "\n",
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoSetError(f"`staff ensure` did not finish: {type(exc).__name__}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoSetError(f"`staff ensure` failed (exit {done.returncode}): {last}")
    try:
        results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return {str(r["username"]): str(r["staff_id"]) for r in results}
    except (ValueError, KeyError, TypeError):
        raise DemoSetError("`staff ensure` printed something other than its results") from None


def create_demo_set(
    creds_dir: Path, identity_environment: Mapping[str, str], python: str = sys.executable
) -> Path:
    """Make sure the demo staff accounts exist with the passwords in the returned file (0600).

    The passwords are recorded before any account is written, and `staff ensure` creates an
    account or resets its password to the recorded one, so an attempt cut at any point leaves
    nothing the next attempt cannot converge from.
    """
    remember_identity_environment(creds_dir, identity_environment)
    path = creds_dir / DEMO_FILE
    planned = planned_accounts(_known_accounts(path))
    _record(path, planned)
    staff_ids = _ensure(service_script("identity", python), identity_environment, planned)
    if missing := [a.username for a in planned if a.username not in staff_ids]:
        raise DemoSetError(f"`staff ensure` did not report {', '.join(missing)}")
    _record(path, [replace(a, staff_id=staff_ids[a.username]) for a in planned])
    return path


def create_demo_set_again(creds_dir: Path, python: str = sys.executable) -> Path:
    """`python -m moment_devstack demo-set`: the demo set for the stack already running."""
    return create_demo_set(creds_dir, load_identity_environment(creds_dir), python)
