"""`python -m benchmarks [--only NAME ...] [--quick]`: start the stack, run, report, stop."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.catalogue import BENCHMARKS, select
from benchmarks.context import Scale
from benchmarks.registry import Benchmark
from benchmarks.report import (
    DEFAULT_OUTPUT,
    build_report,
    print_table,
    wide_console,
    write_report,
)
from benchmarks.runner import RunResult, run_benchmarks
from benchmarks.stack import bench_stack
from moment_devstack.postgres import DEFAULT_ADMIN_URL


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=[b.name for b in BENCHMARKS],
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks, not figures")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_ADMIN_URL,
        help="admin URL of the PostgreSQL server to create throw-away databases on",
    )
    return parser.parse_args(argv)


async def _run(
    benches: tuple[Benchmark, ...], scale: Scale, args: argparse.Namespace, run_dir: Path
) -> tuple[RunResult, list[str], dict[str, str]]:
    console = wide_console()
    async with bench_stack(run_dir, scale, args.postgres_url) as ctx:
        console.print("[dim]infrastructure up[/]")
        result = await run_benchmarks(benches, ctx, lambda m: console.print(f"[dim]{m}[/]"))
        return result, ctx.notes, ctx.environment


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    console = wide_console()
    benches = select(args.only)
    scale = Scale.quick() if args.quick else Scale()
    run_dir = Path(tempfile.mkdtemp(prefix="moment-bench-"))
    started = time.perf_counter()
    try:
        result, notes, environment = asyncio.run(_run(benches, scale, args, run_dir))
    except BaseException:
        console.print(f"[red]benchmark run failed; process logs kept in {run_dir}[/]")
        raise
    report = build_report(benches, result, scale, notes, environment)
    write_report(report, args.output)
    print_table(benches, result, console)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote {args.output} in {time.perf_counter() - started:.0f}s")
    if result.errors:
        console.print(f"[red]failed benchmarks; process logs kept in {run_dir}[/]")
        return 1
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
