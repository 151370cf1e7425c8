"""`moment-identity run | migrate | asyncapi`."""

from __future__ import annotations

from moment_contracts import topics
from moment_contracts.audit import PersonalDataAccessed
from moment_contracts.base import Contract
from moment_contracts.errors import ErrorReply
from moment_contracts.identity import RegistrationAccepted, SealingKey, UserRegistered
from moment_identity.adapters.kafka import register_handlers
from moment_identity.bootstrap import MIGRATIONS, IdentityService
from moment_identity.config import IdentitySettings
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time

PUBLICATIONS: dict[str, tuple[type[Contract], ...]] = {
    topics.IDENTITY_EVENTS: (UserRegistered,),
    topics.AUDIT_EVENTS: (PersonalDataAccessed,),
    "replies.{instance}": (SealingKey, RegistrationAccepted, ErrorReply),
}


def asyncapi() -> str:
    return document(
        "identity", lambda b, c: register_handlers(b, c, not_at_docs_time), PUBLICATIONS
    )


app = service_cli("identity", IdentitySettings, IdentityService, MIGRATIONS, asyncapi)


def main() -> None:
    app()
