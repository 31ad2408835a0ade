"""Runner of the kit's own benchmarks (`make bench`): prints each figure with its unit and target, saves JSON."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

import benchmarks.topics
from edgewise.base.atomic import write_json


@dataclass(frozen=True)
class Figure:
    """One benchmark result: a named value with its unit, how it was obtained, and the target it answers to."""

    name: str
    value: float
    unit: str
    kind: str = "measured"
    target: str = ""
    note: str = ""


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` over `repeats` calls after `warmup` untimed ones (perf_counter)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_calls(fn: Callable[[], object], min_iterations: int = 50, min_seconds: float = 0.5,
                warmup: int = 5) -> list[float]:
    """Per-call wall times of `fn` (perf_counter) for at least `min_iterations` calls and `min_seconds`."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iterations or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def topics() -> list[str]:
    """Names of the benchmark topics (the modules in benchmarks/topics)."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.topics.__path__))


def main(argv: list[str] | None = None) -> None:
    """Run the chosen topics (all by default), print their figures, and write runs/bench/<topic>.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("topic", nargs="*", choices=[*topics(), []], help="benchmark modules to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 140)
    for topic in args.topic or topics():
        module = importlib.import_module(f"benchmarks.topics.{topic}")
        console.print(f"[bold]{topic}[/bold]: {(module.__doc__ or '').strip().splitlines()[0]}")
        figures = module.run()
        table = Table(show_edge=False)
        for column in ("figure", "value", "unit", "kind", "target", "note"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for f in figures:
            table.add_row(f.name, f"{f.value:.4g}", f.unit, f.kind, f.target, f.note)
        console.print(table)
        write_json(args.out / f"{topic}.json", [asdict(f) for f in figures])


if __name__ == "__main__":
    main()
