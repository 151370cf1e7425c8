"""The report: latest.json for machines, a table for people.

Figures are rounded to three significant figures; ratios are derived before rounding, goals are
judged on the rounded figure as shown. Goals are provisional targets, not fitted to any run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.context import Scale
from benchmarks.measure import rounded
from benchmarks.registry import Benchmark, Figure, Figures, Goal
from benchmarks.runner import RunResult

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"model name", "Model", "Hardware"}:
            return value.strip()
    return None


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
    }


def _round(value: Figure) -> Figure:
    return value if isinstance(value, int) else rounded(value)


def goals(benches: Sequence[Benchmark], figures: Figures) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for goal in (g for b in benches for g in b.goals):
        value = figures.get(goal.figure)
        shown = None if value is None else _round(value)
        found[goal.figure] = {
            "target": f"{goal.op} {goal.target:g}",
            "value": shown,
            "met": None if shown is None else goal.met(shown),
            "why": goal.why,
        }
    return found


def build_report(
    benches: Sequence[Benchmark],
    result: RunResult,
    scale: Scale,
    notes: list[str],
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": machine(),
        "environment": environment or {},
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": {name: _round(value) for name, value in result.figures.items()},
        "goals": goals(benches, result.figures),
        "scale": scale.as_dict(),
        "durations_s": {name: round(s, 1) for name, s in result.durations_s.items()},
        "notes": notes,
    }
    if result.errors:
        report["errors"] = result.errors
    return report


def write_report(report: dict[str, Any], path: Path = DEFAULT_OUTPUT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def show(value: Figure | None) -> str:
    if value is None:
        return "-"
    value = _round(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:g}"


def _goal_cell(goal: Goal | None, figures: Figures) -> str:
    if goal is None or goal.figure not in figures:
        return ""
    # Judged on the rounded figure, so the table never shows "0.7 missed" against ">= 0.7".
    mark = "[green]met[/]" if goal.met(_round(figures[goal.figure])) else "[red]missed[/]"
    return f"{goal.op} {goal.target:g} {mark}"


def _rows(bench: Benchmark, figures: Figures) -> list[tuple[str, str, str, str, str]]:
    by_figure = {g.figure: g for g in bench.goals}
    shown: set[str] = set()
    rows: list[tuple[str, str, str, str, str]] = []
    for c in bench.comparisons:
        if c.figure not in figures:
            continue
        baseline = f"{c.baseline} = {show(figures.get(c.baseline))}"
        goal = by_figure.get(c.ratio) or by_figure.get(c.figure)
        rows.append(
            (
                c.figure,
                show(figures[c.figure]),
                baseline,
                show(figures.get(c.ratio)),
                _goal_cell(goal, figures),
            )
        )
        shown.update((c.figure, c.baseline, c.ratio))
    rows.extend(
        (name, show(value), "", "", _goal_cell(by_figure.get(name), figures))
        for name, value in figures.items()
        if name not in shown
    )
    return rows


def print_table(
    benches: Sequence[Benchmark], result: RunResult, console: Console | None = None
) -> None:
    table = Table(title="Moment benchmarks (ratio = figure / baseline, same run)")
    for header in ("figure", "value", "baseline", "ratio", "goal"):
        table.add_column(header, justify="right" if header in {"value", "ratio"} else "left")
    for bench in benches:
        if bench.name in result.errors:
            table.add_row(bench.name, "[red]failed[/]", result.errors[bench.name][:80], "", "")
            table.add_section()
            continue
        for row in _rows(bench, result.by_benchmark.get(bench.name, {})):
            table.add_row(*row)
        table.add_section()
    (console or wide_console()).print(table)


def wide_console() -> Console:
    """A console that does not squeeze the table to 80 columns when output is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=150)
