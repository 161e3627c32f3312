"""Timing helpers shared by the benchmarks: interleaved rounds, medians, one table format."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def median_us(fn: Callable[[], object], *, steps: int = 30, warmup: int = 5) -> float:
    """Median wall time of one call of `fn`, in microseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def paired_us(a: Callable[[], object], b: Callable[[], object], *, steps: int = 30, rounds: int = 5,
              warmup: int = 5) -> tuple[float, float]:
    """Medians of `a` and `b` measured in alternating rounds, so machine noise hits both alike."""
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    per = max(1, steps // rounds)
    for _ in range(rounds):
        for fn, acc in ((a, ta), (b, tb)):
            for _ in range(per):
                t = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t)
    return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6


@dataclass
class Row:
    name: str
    ours: float
    theirs: float | None
    unit: str
    bar: str
    ok: bool

    @property
    def ratio(self) -> str:
        return "" if not self.theirs else f"{self.ours / self.theirs:.2f}x"


def print_table(title: str, rows: list[Row], theirs_label: str) -> None:
    print(f"\n## {title}")
    print(f"| benchmark | interop | {theirs_label} | ratio | bar | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        theirs = "" if r.theirs is None else f"{r.theirs:,.1f} {r.unit}"
        print(f"| {r.name} | {r.ours:,.1f} {r.unit} | {theirs} | {r.ratio} | {r.bar} | {'yes' if r.ok else 'NO'} |")
