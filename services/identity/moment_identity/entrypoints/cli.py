"""`moment-identity run | migrate | asyncapi | staff create | staff ensure | staff deactivate`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from moment_auth.principals import Role
from moment_contracts import topics
from moment_contracts.base import Contract
from moment_contracts.catalogue import IDENTITY_REPLIES, TOPIC_MESSAGES
from moment_contracts.errors import ErrorReply
from moment_crypto.errors import CryptoError
from moment_identity.adapters.kafka import register_handlers
from moment_identity.bootstrap import MIGRATIONS, IdentityService, staff_admin
from moment_identity.config import IdentitySettings
from moment_identity.service.principals import (
    StaffAccountExists,
    StaffAccountNotFound,
    StaffAccountRejected,
)
from moment_persistence.errors import PersistenceError, UniqueViolation
from moment_runtime.cli import service_cli
from moment_runtime.docs import document, not_at_docs_time
from moment_settings.loader import load_settings

PUBLICATIONS: dict[str, tuple[type[Contract], ...]] = {
    topics.IDENTITY_EVENTS: TOPIC_MESSAGES[topics.IDENTITY_EVENTS],
    topics.AUDIT_EVENTS: TOPIC_MESSAGES[topics.AUDIT_EVENTS],
    "replies.{instance}": (*IDENTITY_REPLIES, ErrorReply),
}


def asyncapi() -> str:
    return document(
        "identity", lambda b, c: register_handlers(b, c, not_at_docs_time), PUBLICATIONS
    )


app = service_cli("identity", IdentitySettings, IdentityService, MIGRATIONS, asyncapi)
staff = typer.Typer(help="Staff accounts, for operators.", no_args_is_help=True)
app.add_typer(staff, name="staff")
# `staff create` exits with this when the username is taken, so scripts can tell it apart.
EXIT_EXISTS = 3


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    # Piped: the first line is the password; it is never echoed.
    return sys.stdin.readline().rstrip("\r\n")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"moment-identity staff: {message}", err=True)
    return typer.Exit(code)


@staff.command("create")
def staff_create(
    username: Annotated[str, typer.Option(help="The staff member's login name.")],
    role: Annotated[list[Role], typer.Option(help="A role to grant; repeat for several.")],
) -> None:
    """Create a staff account; the password is read hidden from the terminal, or from stdin.
    Prints the new staff id."""
    password = _read_password()
    settings = load_settings(IdentitySettings)

    async def create() -> str:
        async with staff_admin(settings) as admin:
            return await admin.create(username, password, role)

    try:
        typer.echo(asyncio.run(create()))
    except (StaffAccountExists, UniqueViolation):
        raise _fail("a staff account with this username already exists", EXIT_EXISTS) from None
    except StaffAccountRejected as exc:
        raise _fail(str(exc)) from None
    except (CryptoError, PersistenceError) as exc:
        raise _fail(str(exc)) from None


def _read_accounts() -> list[tuple[str, str, list[Role]]]:
    """JSON lines on stdin: {"username", "password", "roles"}; passwords never reach argv."""
    accounts = []
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            roles = [Role(role) for role in item["roles"]]
            accounts.append((str(item["username"]), str(item["password"]), roles))
        except (ValueError, KeyError, TypeError):
            raise _fail(f"line {number} is not an account") from None
    return accounts


@staff.command("ensure")
def staff_ensure() -> None:
    """Create each account read from stdin (JSON lines: username, password, roles), or reset its
    password when it exists with another. One process and one Vault login for them all, and
    running it again converges. Prints one JSON line per account: username, staff_id, outcome."""
    accounts = _read_accounts()
    settings = load_settings(IdentitySettings)

    async def ensure() -> None:
        async with staff_admin(settings) as admin:
            for username, password, roles in accounts:
                staff_id, outcome = await admin.ensure(username, password, roles)
                line = {"username": username, "staff_id": staff_id, "outcome": outcome}
                typer.echo(json.dumps(line))

    try:
        asyncio.run(ensure())
    except StaffAccountRejected as exc:
        raise _fail(str(exc)) from None
    except (CryptoError, PersistenceError) as exc:
        raise _fail(str(exc)) from None


@staff.command("deactivate")
def staff_deactivate(
    username: Annotated[str, typer.Option(help="The staff member's login name.")],
) -> None:
    """Deactivate a staff account and revoke every token it holds. Prints the staff id."""
    settings = load_settings(IdentitySettings)

    async def deactivate() -> str:
        async with staff_admin(settings) as admin:
            return (await admin.deactivate(username)).staff_id

    try:
        typer.echo(asyncio.run(deactivate()))
    except StaffAccountNotFound as exc:
        raise _fail(str(exc)) from None
    except (CryptoError, PersistenceError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    app()
