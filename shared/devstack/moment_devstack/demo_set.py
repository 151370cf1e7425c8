"""Development only: one staff account per role, so the staff-facing flows can be tried at once.

Accounts are created through the identity service's own operator command (`moment-identity staff
create`), run with the stack's identity settings: shared code never imports a service. Generated
passwords go to a 0600 file in the run's credentials folder and are never printed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from moment_devstack.stack import service_script

DEMO_ROLES = ("support-operator", "privacy-officer", "legal-counsel", "security-analyst", "admin")
DEMO_FILE = "demo-staff.json"
# The identity settings of the running stack, so `demo-set` can run again on its own.
IDENTITY_ENV_FILE = "identity-env.json"
# What `moment-identity staff create` exits with when the username is taken.
EXIT_EXISTS = 3
COMMAND_TIMEOUT_S = 60.0


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
    """Accounts recorded by an earlier demo set of this run; their passwords still hold."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {role: DemoAccount(role=role, **fields) for role, fields in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _create(
    script: Path, environment: Mapping[str, str], role: str, known: DemoAccount | None
) -> DemoAccount:
    username = demo_username(role)
    password = secrets.token_urlsafe(18)
    command = [str(script), "staff", "create", "--username", username, "--role", role]
    try:
        done = subprocess.run(
            command,
            input=f"{password}\n",
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoSetError(
            f"`staff create` for {role} did not finish: {type(exc).__name__}"
        ) from None
    if done.returncode == 0:
        return DemoAccount(role, username, password, done.stdout.strip())
    if done.returncode == EXIT_EXISTS and known is not None:
        return known
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    raise DemoSetError(f"`staff create` for {role} failed (exit {done.returncode}): {last}")


def create_demo_set(
    creds_dir: Path, identity_environment: Mapping[str, str], python: str = sys.executable
) -> Path:
    """Create the demo staff accounts; returns the file holding their passwords (mode 0600)."""
    remember_identity_environment(creds_dir, identity_environment)
    path = creds_dir / DEMO_FILE
    known = _known_accounts(path)
    script = service_script("identity", python)
    # Side by side: each command spends most of its time starting Python and logging in to Vault.
    with ThreadPoolExecutor(len(DEMO_ROLES)) as pool:
        accounts = list(
            pool.map(lambda r: _create(script, identity_environment, r, known.get(r)), DEMO_ROLES)
        )
    document = {
        a.role: {"username": a.username, "password": a.password, "staff_id": a.staff_id}
        for a in accounts
    }
    write_private(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def create_demo_set_again(creds_dir: Path, python: str = sys.executable) -> Path:
    """`python -m moment_devstack demo-set`: the demo set for the stack already running."""
    return create_demo_set(creds_dir, load_identity_environment(creds_dir), python)
