"""The command line every service shares: `run`, `migrate` and `asyncapi`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from moment_persistence.migrations import upgrade_to_head
from moment_runtime.core import Service, run_until_signalled
from moment_settings.loader import load_settings

S = TypeVar("S")


def service_cli(
    name: str,
    settings_cls: type[S],
    build: Callable[[S], Service],
    migrations: Path,
    document: Callable[[], str],
) -> typer.Typer:
    # No locals in tracebacks: they would print settings, and settings can hold secrets.
    app = typer.Typer(
        help=f"The Moment {name} service.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )

    @app.command()
    def run() -> None:
        """Start the service and run until SIGTERM or Ctrl-C."""
        settings = load_settings(settings_cls)  # type: ignore[type-var]
        asyncio.run(run_until_signalled(build(settings)))

    @app.command()
    def migrate() -> None:
        """Apply database migrations (production runs this as its own step, e.g. a Helm job)."""
        settings: Any = load_settings(settings_cls)  # type: ignore[type-var]
        asyncio.run(upgrade_to_head(settings.database.url.get_secret_value(), migrations))
        typer.echo(f"{name}: database is at the newest revision")

    @app.command()
    def asyncapi(
        out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    ) -> None:
        """Print the service's AsyncAPI 3.0 document."""
        text = document()
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")

    return app
