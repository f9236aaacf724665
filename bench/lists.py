"""The lists and pages at 1k, 10k and 100k requests: p95 of 30 calls and the SQL queries of one call.

Each page is called in-process with Django's test client, as its user would call it: the API with an
API token (`Authorization: Token ...`, through the token check and the directory refresh), the web
pages with a session (`force_login`). A page that costs the same at every size is O(1): its ratio
(largest size ÷ smallest, of the medians) stays near 1. Besides p95 and the median of the wall time,
the CPU time this process spent per call (its median) is given: the machine is shared, and that figure
moves much less with the load of others than the wall time does (the database's time is not in it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.test import Client

from accounts.models import ApiToken
from bench.common import Out, median, p95, query_count, timings
from bench.seed import NAME_STEMS, Cast, seed
from config.startup import freeze_loaded

RUNS = 30
LARGEST = 100_000  # the size the targets are set at


@dataclass
class Page:
    what: str
    who: str
    path: str
    api: bool = False
    target_ms: float | None = None
    target_queries: int | None = None
    p95s: dict[int, float] = field(default_factory=dict)
    medians: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    queries: dict[int, int] = field(default_factory=dict)
    kib: dict[int, float] = field(default_factory=dict)


def pages(cast: Cast) -> list[Page]:
    team = cast.team.slug
    stem = NAME_STEMS[1]
    # The cursor an "Older" link carries (requests_app.pages), for a row created a year ago; the largest id
    # sorts it after every row of that instant.
    year_back = f"{int((time.time() - 365 * 86_400) * 1_000_000)}.ffffffff-ffff-ffff-ffff-ffffffffffff"
    return [
        Page("API requests", "team member", "/api/v1/requests/", api=True, target_ms=50),
        Page("API resources", "admin", "/api/v1/resources/", api=True, target_ms=50, target_queries=10),
        Page("API resources", "team member", "/api/v1/resources/", api=True),
        Page("web requests", "team member", "/requests/"),
        Page("web requests", "admin", "/requests/"),
        Page("web requests, state=pending_approval", "admin", "/requests/?state=pending_approval"),
        Page("web requests, kind=database", "admin", "/requests/?kind=database"),
        Page(f"web requests, team={team}", "admin", f"/requests/?team={team}"),
        Page(f"web requests, search={stem}", "admin", f"/requests/?search={stem}"),
        Page("web requests, search for one name", "admin", "/requests/?search=no-such-name"),
        Page("web requests, environment=prod", "admin", "/requests/?environment=prod"),
        Page("web requests, environment=prod", "team member", "/requests/?environment=prod"),
        # A page a year back, reached by the "Older" links' cursor: deep in the list, read from there.
        Page("web requests, a year back (cursor)", "admin", f"/requests/?after={year_back}"),
        Page("web requests, environment=prod, a year back", "admin", f"/requests/?environment=prod&after={year_back}"),
        Page("web resources", "team member", "/resources/"),
        Page("web resources", "admin", "/resources/"),
        Page("web resources, state=active", "admin", "/resources/?state=active"),
        Page("web resources, kind=app", "admin", "/resources/?kind=app"),
        Page(f"web resources, team={team}", "admin", f"/resources/?team={team}"),
        Page(f"web resources, search={stem}", "admin", f"/resources/?search={stem}"),
        Page("web resources, environment=prod", "admin", "/resources/?environment=prod"),
        Page("lease dashboard /leases/", "admin", "/leases/", target_ms=100),
        Page("reclaim forecast /leases/forecast/", "admin", "/leases/forecast/", target_ms=200),
        Page("approval queue /approvals/", "approver", "/approvals/"),
    ]


def clients(cast: Cast) -> dict[tuple[str, bool], Client]:
    """A session client and an API-token client per persona."""
    out = {}
    for who, user in (("team member", cast.member), ("admin", cast.admin), ("approver", cast.approver)):
        web = Client(HTTP_HOST="localhost")
        web.force_login(user)
        _, key = ApiToken.objects.create(user)
        out[(who, False)] = web
        out[(who, True)] = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Token {key}")
    return out


def measure(out: Out, page: Page, client: Client, size: int) -> None:
    def call():
        response = client.get(page.path, secure=True)
        if response.status_code != 200:
            raise RuntimeError(f"{page.path} as {page.who}: HTTP {response.status_code}")
        return response

    page.kib[size] = len(call().content) / 1024
    page.queries[size] = query_count(call)
    cpu: list[float] = []

    def timed_call():
        started = time.process_time()
        call()
        cpu.append(time.process_time() - started)

    walls = timings(timed_call, runs=RUNS)
    page.p95s[size], page.medians[size], page.cpu[size] = p95(walls), median(walls), median(cpu[-RUNS:])
    print(
        f"    {size:>7} | {page.what} ({page.who}) | p95 {page.p95s[size] * 1000:.1f} ms, "
        f"median {page.medians[size] * 1000:.1f} ms, CPU {page.cpu[size] * 1000:.1f} ms | "
        f"{page.queries[size]} queries | {page.kib[size]:.0f} KiB",
        flush=True,
    )


def report(out: Out, page: Page, sizes: list[int]) -> None:
    first, last = sizes[0], sizes[-1]
    per_size = " / ".join(f"{page.p95s[s] * 1000:.0f}" for s in sizes)
    queries = "/".join(str(page.queries[s]) for s in sizes)
    ratio = page.p95s[last] / page.p95s[first] if page.p95s[first] else float("nan")
    measured = f"p95 {per_size} ms; {queries} queries; {page.kib[last]:.0f} KiB" + (
        f"; ×{ratio:.2f} {last // 1000}k/{first // 1000}k" if len(sizes) > 1 else ""
    )
    target, ok = "", None
    if page.target_ms is not None:
        target = f"p95 ≤ {page.target_ms:.0f} ms"
        ok = page.p95s[last] * 1000 <= page.target_ms
        if page.target_queries is not None:
            target += f", ≤ {page.target_queries} queries"
            ok = ok and page.queries[last] <= page.target_queries
        if last != LARGEST:
            target += f" (at {LARGEST // 1000}k; measured at {last // 1000}k)"
    out.row("lists", f"{page.what} ({page.who})", measured, target, ok)


def run(out: Out, sizes: list[int]) -> None:
    sizes = sorted(sizes)
    cast = seed(sizes[0])
    table = pages(cast)
    by_client = clients(cast)
    for size in sizes:
        cast = seed(size)
        # This process stands in for a web worker, which freezes what it loaded (config/startup.py):
        # otherwise a full collection walking the seed's leftovers (100–150 ms) lands in the p95.
        freeze_loaded()
        out.note(f"{size} requests: p95 of {RUNS} calls, queries of one call, page size")
        for page in table:
            measure(out, page, by_client[(page.who, page.api)], size)
    out.note(f"sizes {', '.join(str(s) for s in sizes)}: p95 per size, queries per size, the largest page's size")
    for page in table:
        report(out, page, sizes)
