"""The services' AsyncAPI documents under docs/asyncapi/, regenerated or checked for staleness.

Each document comes from the service's own `moment-<service> asyncapi` command, which builds the
broker exactly as at run time, so a stale file means the docs no longer match the code. It runs as
a separate process because shared code never imports a service.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from moment_devstack.stack import SERVICES

DEFAULT_DIRECTORY = Path("docs") / "asyncapi"


def generate(service: str) -> str:
    """The current AsyncAPI document of one service, as the text its JSON file should hold."""
    command = Path(sys.executable).parent / f"moment-{service}"
    done = subprocess.run(
        [str(command), "asyncapi"], capture_output=True, check=True, text=True, encoding="utf-8"
    )
    return done.stdout


def document_path(directory: Path, service: str) -> Path:
    return directory / f"{service}.json"


def stale_documents(directory: Path, services: Iterable[str] = SERVICES) -> list[Path]:
    """The document files that are missing or differ from what the code generates now."""
    stale: list[Path] = []
    for service in services:
        path = document_path(directory, service)
        if not path.is_file() or path.read_text(encoding="utf-8") != generate(service):
            stale.append(path)
    return stale


def write_documents(directory: Path, services: Iterable[str] = SERVICES) -> list[Path]:
    """Write every service's document; returns the files whose content changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for service in services:
        path = document_path(directory, service)
        text = generate(service)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
