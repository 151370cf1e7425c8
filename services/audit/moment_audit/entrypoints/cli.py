"""`moment-audit run | migrate | asyncapi`."""

from __future__ import annotations

from moment_audit.adapters.kafka import register_handlers
from moment_audit.bootstrap import MIGRATIONS, build
from moment_audit.config import AuditSettings
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time

PUBLICATIONS: dict[str, tuple[type, ...]] = {}


def asyncapi() -> str:
    return document("audit", lambda b, c: register_handlers(b, c, not_at_docs_time), PUBLICATIONS)


app = service_cli("audit", AuditSettings, build, MIGRATIONS, asyncapi)


def main() -> None:
    app()
