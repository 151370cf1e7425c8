"""The services' AsyncAPI documents under docs/asyncapi/, regenerated or checked for staleness.

Each document comes from the service's own `moment_<service>.entrypoints.cli.asyncapi()`, which
builds the broker exactly as at run time, so a stale file means the docs no longer match the code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

from moment_devstack.stack import SERVICES

DEFAULT_DIRECTORY = Path("docs") / "asyncapi"


def generate(service: str) -> str:
    """The current AsyncAPI document of one service, as the text its JSON file should hold."""
    # Imported on demand: each service's CLI pulls in its whole dependency tree.
    module = importlib.import_module(f"moment_{service}.entrypoints.cli")
    document = cast("Callable[[], str]", module.asyncapi)
    return document()


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
