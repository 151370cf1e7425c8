"""What the development stack is made of: its run folder, ports, root token and service settings.

Everything here is decided before any process starts, so a bad setting fails at once and leaves
nothing running. Services get their configuration as MOMENT_<SERVICE>_* environment variables,
the same way a deployment configures them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from moment_devstack.processes import LOOPBACK, port_open
from moment_devstack.vault_bootstrap import ServiceCredentials

SERVICES = ("identity", "consent", "audit")
RUN_DIR_VARIABLE = "MOMENT_RUN_DIR"
KAFKA_PORT_VARIABLE = "MOMENT_KAFKA_PORT"
VAULT_PORT_VARIABLE = "MOMENT_VAULT_PORT"
DEFAULT_RUN_DIR = ".run"
ROOT_TOKEN_FILE = "root-token"  # noqa: S105 - a file name


class StackError(RuntimeError):
    """The development stack could not be started or stopped running."""


@dataclass(frozen=True)
class RunDir:
    """The git-ignored folder holding this run's logs, SQLite files and credentials."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def creds(self) -> Path:
        return self.root / "creds"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def prepare_run_dir(environ: Mapping[str, str]) -> RunDir:
    """Create the run folder; logs of an earlier run are removed so readiness is read afresh."""
    run_dir = RunDir(Path(environ.get(RUN_DIR_VARIABLE) or DEFAULT_RUN_DIR).resolve())
    for folder in (run_dir.logs, run_dir.data):
        folder.mkdir(parents=True, exist_ok=True)
    run_dir.creds.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_dir.creds.chmod(0o700)
    for old in run_dir.logs.glob("*.log"):
        old.unlink()
    return run_dir


def fixed_port(environ: Mapping[str, str], variable: str) -> int | None:
    """The port a variable pins, or None for a free one; a busy port fails before any start."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{variable} must be a port number between 1 and 65535")
    port = int(raw)
    if port_open(port):
        raise StackError(f"{variable}={port}: {LOOPBACK}:{port} is already in use")
    return port


def write_root_token(creds_dir: Path) -> str:
    """A fresh root token for this run, kept only in a 0600 file, never printed."""
    token = secrets.token_urlsafe(32)
    path = creds_dir / ROOT_TOKEN_FILE
    # Created 0600 from the start, so the token is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token)
    path.chmod(0o600)
    return token


def service_script(service: str, python: str) -> Path:
    """The service's console script, installed next to the interpreter running the stack."""
    script = Path(python).parent / f"moment-{service}"
    if not script.exists():
        raise StackError(f"{script} is missing: run `make install` first")
    return script


def service_environment(
    service: str,
    *,
    kafka: str,
    vault_url: str,
    credentials: ServiceCredentials,
    database_url: str,
) -> dict[str, str]:
    """The MOMENT_<SERVICE>_* variables pointing one service at this run's infrastructure."""
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": kafka,
        # A nested variable replaces the whole default model, so its client id must be restated.
        "KAFKA__CLIENT_ID": service,
        "DATABASE__URL": database_url,
        "VAULT__URL": vault_url,
        "VAULT__AUTH_METHOD": "approle",
        "VAULT__ROLE_ID_FILE": str(credentials.role_id_file),
        "VAULT__SECRET_ID_FILE": str(credentials.secret_id_file),
        "TELEMETRY__SERVICE_NAME": service,
    }
    prefix = f"MOMENT_{service.upper()}_"
    # Logs go to a file; unbuffered output lets the stack see "service ready" when it is written.
    return {"PYTHONUNBUFFERED": "1"} | {prefix + key: value for key, value in settings.items()}
