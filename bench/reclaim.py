"""The reclamation pass against the total at a fixed number due: `reclaim_pass(dry_run=True)` with 1,000
leases past their grace at every size. A pass that costs O(due) takes the same time at every size.

The dry run is what `reclaim_leases --dry-run` and the forecast run: notices, the hand-over check, the
leases to put in grace, the due leases to back up and delete (RECLAIM_MAX_PER_RUN of them; the rest
deferred). It changes nothing, so it is repeated on the same data.
"""

from __future__ import annotations

from bench.common import Out, median, p95, query_count, timings
from bench.seed import seed
from leases.services.reclaim_pass import reclaim_pass

DUE = 1000
RUNS = 7
LARGEST = 100_000
TARGET_S = 0.5


def run(out: Out, sizes: list[int]) -> None:
    sizes = sorted(sizes)
    results: dict[int, tuple[float, float, int]] = {}
    for size in sizes:
        seed(max(size, DUE), due=DUE)
        report = reclaim_pass(dry_run=True)
        queries = query_count(lambda: reclaim_pass(dry_run=True))
        runs = timings(lambda: reclaim_pass(dry_run=True), runs=RUNS, warmup=1)
        results[size] = (median(runs), p95(runs), queries)
        out.note(
            f"{size} requests, {DUE} due: median {median(runs):.3f} s, worst {max(runs):.3f} s of {RUNS}; "
            f"{queries} queries; report: {len(report.reclaimed)} to reclaim, {len(report.deferred)} deferred, "
            f"{len(report.to_grace)} to grace, {len(report.notices)} notices, {len(report.handed_over)} hand-overs"
        )
    first, last = sizes[0], sizes[-1]
    per_size = " / ".join(f"{results[s][0]:.3f}" for s in sizes)
    ratio = results[last][0] / results[first][0] if results[first][0] else float("nan")
    queries = "/".join(str(results[s][2]) for s in sizes)
    measured = f"median {per_size} s at {', '.join(f'{s // 1000}k' for s in sizes)}; {queries} queries"
    if len(sizes) > 1:
        measured += f"; ×{ratio:.2f} {last // 1000}k/{first // 1000}k"
    target = f"≤ {TARGET_S} s, independent of the total"
    if last != LARGEST:
        target += f" (at {LARGEST // 1000}k; measured at {last // 1000}k)"
    ok = results[last][0] <= TARGET_S and (len(sizes) == 1 or ratio <= 1.5)
    out.row("reclaim", f"reclaim_pass(dry_run=True), {DUE} leases due", measured, target, ok)
