"""`python -m moment_devstack run | check-postgres | asyncapi | demo-set | demo`, as the Makefile
calls them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url

from moment_devstack.apidocs import DEFAULT_DIRECTORY, stale_documents, write_documents
from moment_devstack.demo import run_demo
from moment_devstack.demo_set import DemoSetError, create_demo_set_again
from moment_devstack.postgres import (
    DEFAULT_ADMIN_URL,
    TEST_URL_VARIABLE,
    PostgresUnavailable,
    check_postgres,
)
from moment_devstack.run import run_stack
from moment_devstack.stack import DEFAULT_RUN_DIR, RUN_DIR_VARIABLE, RunDir

app = typer.Typer(
    help="The Moment development stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _console(*, stderr: bool = False) -> Console:
    # soft_wrap keeps each line whole in pipes and logs, where it may be read by a program.
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


@app.command()
def run() -> None:
    """Start Tansu, OpenBao, the databases and the three services; Ctrl-C stops everything."""
    raise typer.Exit(run_stack(_console()))


@app.command("check-postgres")
def check_postgres_command() -> None:
    """Fail with what to do when PostgreSQL (MOMENT_TEST_POSTGRES_URL) is not reachable."""
    url = os.environ.get(TEST_URL_VARIABLE) or DEFAULT_ADMIN_URL
    try:
        asyncio.run(check_postgres(url))
    except PostgresUnavailable as exc:
        _console(stderr=True).print(f"[bold red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    parsed = make_url(url)
    where = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}"
    _console().print(f"PostgreSQL is reachable at {where}")


@app.command()
def asyncapi(
    write: Annotated[
        bool, typer.Option("--write/--check", help="Regenerate the files, or only check them.")
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where the documents live.")] = (
        DEFAULT_DIRECTORY
    ),
) -> None:
    """Write or check each service's AsyncAPI document (docs/asyncapi/<service>.json)."""
    console = _console()
    if write:
        changed = write_documents(directory)
        for path in changed:
            console.print(f"wrote {escape(str(path))}")
        if not changed:
            console.print("AsyncAPI documents are up to date")
        return
    stale = stale_documents(directory)
    if stale:
        err = _console(stderr=True)
        err.print("[bold red]stale AsyncAPI documents[/] (run `make asyncapi`):")
        for path in stale:
            err.print(f"  {escape(str(path))}")
        raise typer.Exit(1)
    console.print("AsyncAPI documents are up to date")


@app.command("demo-set")
def demo_set() -> None:
    """Create one demo staff account per role in the running stack (`make run` does it too);
    passwords go to .run/creds/demo-staff.json, never to the screen."""
    creds = RunDir(Path(os.environ.get(RUN_DIR_VARIABLE) or DEFAULT_RUN_DIR).resolve()).creds
    try:
        path = create_demo_set_again(creds)
    except DemoSetError as exc:
        _console(stderr=True).print(f"[bold red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    _console().print(f"demo staff accounts ready; passwords in {escape(str(path))}")


@app.command()
def demo() -> None:
    """Play a storefront's day against the running stack (`make run`), one line per step; exit 2
    when no stack is running."""
    raise typer.Exit(run_demo(_console()))
