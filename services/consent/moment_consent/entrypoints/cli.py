"""`moment-consent run | migrate | asyncapi`."""

from __future__ import annotations

from moment_consent.adapters.kafka import register_handlers
from moment_consent.bootstrap import MIGRATIONS, build
from moment_consent.config import ConsentSettings
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time

PUBLICATIONS: dict[str, tuple[type, ...]] = {}


def asyncapi() -> str:
    return document("consent", lambda b, c: register_handlers(b, c, not_at_docs_time), PUBLICATIONS)


app = service_cli("consent", ConsentSettings, build, MIGRATIONS, asyncapi)


def main() -> None:
    app()
