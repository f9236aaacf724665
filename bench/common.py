"""What every benchmark module shares: the report it writes to, timing, query counts, a database reset.

A module is `bench/<name>.py` with `run(out: Out, sizes: list[int]) -> None`; `python -m bench`
runs the modules in order (or `--only a,b`) and prints one table. A figure with a target says
whether it met it; nothing here fails or exits non-zero on a missed target: this is a measurement,
not a test (the tests prove behaviour; `make bench` reports speed and memory).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.test.utils import CaptureQueriesContext


@dataclass
class Row:
    section: str
    what: str
    measured: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Out:
    rows: list[Row] = field(default_factory=list)

    def row(self, section: str, what: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(section, what, measured, target, ok))
        mark = {True: "ok", False: "MISSED", None: ""}[ok]
        print(f"  {section} | {what} | {measured} | {target} {mark}".rstrip(), flush=True)

    def note(self, text: str) -> None:
        print(f"  · {text}", flush=True)

    def markdown(self) -> str:
        lines = ["| area | what | measured | target |", "|---|---|---|---|"]
        for r in self.rows:
            verdict = {True: " ✓", False: " ✗ missed", None: ""}[r.ok]
            lines.append(f"| {r.section} | {r.what} | {r.measured} | {r.target}{verdict} |")
        return "\n".join(lines)


def timings(call: Callable[[], object], *, runs: int, warmup: int = 2) -> list[float]:
    """Seconds per call, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def query_count(call: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)
