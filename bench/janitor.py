"""Leasehold's dry run against kube-janitor's (issue 12): which expired namespaces would go, over 2,000.

kube-janitor (hjacobs/kube-janitor) deletes namespaces whose `janitor/expires` annotation is past. It is
not on PyPI and is never a dependency of Leasehold: give a checkout in KUBE_JANITOR_SRC
(`git clone https://codeberg.org/hjacobs/kube-janitor`); the benchmark installs its two dependencies
(pykube-ng, jmespath) into a throw-away virtualenv in a temp dir and runs it from that checkout. Without
KUBE_JANITOR_SRC the benchmark says so and measures nothing.

Seeding (not timed): N (2,000) namespaces on the local API server, each annotated `janitor/expires` in
the past; the same N as Leasehold namespace resources in the database whose leases are past grace, each
with its five recorded objects (a dry run reads the database only). RECLAIM_MAX_PER_RUN is raised to N
so that Leasehold's dry run lists every one of them with its objects, as kube-janitor lists every
namespace it would delete.

Timed, median of 3 (after one untimed run of each):
- as processes, start to exit, interpreter and imports included: `python -m kube_janitor --dry-run
  --once` against `manage.py reclaim_leases --dry-run`: what an operator's cron job costs;
- the pass alone, in a warm interpreter: kube-janitor's `main([...])` (its imports done first) against
  Leasehold's `reclaim_pass(dry_run=True)`: the work each does for the same answer.
Like is compared with like in each line; the second is the fair measure of the passes themselves, the
first adds each program's start-up (Django's and the other libraries' imports on Leasehold's side).
Each process is given with its CPU time (user + system, of the process alone: the API server's and
PostgreSQL's work is not in it), which moves less than the wall time on a loaded machine.

Both programs run from bytecode compiled beforehand (`compileall`), as Leasehold's image is built
(Containerfile): with PYTHONDONTWRITEBYTECODE set, as in this repository's environments, a source
checkout would otherwise be compiled again by every process, which no deployed cron job does.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from kubernetes import client

from bench.common import Out, median
from bench.seed import seed
from leases.models import Lease, LeaseState
from leases.services.opening import database_now
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from provisioning.models import ManagedObject
from requests_app.models import Resource, ResourceRequest, ResourceState, Team, default_cluster_pk

N = int(os.environ.get("BENCH_JANITOR_N", "2000"))
RUNS = 3
ROOT = Path(__file__).resolve().parents[1]
TEAM = "janitor"
INSIDE = [
    ("v1", "ResourceQuota", "leasehold"),
    ("v1", "LimitRange", "leasehold"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "leasehold-team"),
    ("networking.k8s.io/v1", "NetworkPolicy", "leasehold-default"),
]
# Times kube-janitor's own run in its venv, after its imports.
JANITOR_PASS = """
import sys, time
from kube_janitor.main import main
started = time.perf_counter()
main(["--dry-run", "--once"])
print(f"PASS {time.perf_counter() - started:.6f}", file=sys.stderr)
"""

LEASEHOLD_PACKAGES = ("config", "requests_app", "approvals", "provisioning", "leases", "accounts")
DJANGO_START = "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup()"


def _seed_cluster(core: client.CoreV1Api, names: list[str]) -> None:
    def create(name: str) -> None:
        body = {"metadata": {"name": name, "annotations": {"janitor/expires": "2020-01-01T00:00:00Z"}}}
        core.create_namespace(body)

    cluster.map_bounded(create, names)


def _seed_database(names: list[str]) -> list[Resource]:
    group, _ = Group.objects.get_or_create(name=f"team-{TEAM}")
    team = Team.objects.get(slug=TEAM)
    owner, _ = get_user_model().objects.get_or_create(username="bench-janitor", defaults={"email": "j@example.org"})
    owner.groups.add(group)
    now = database_now()
    cluster_id = default_cluster_pk()
    requests = ResourceRequest.objects.bulk_create(
        ResourceRequest(
            kind="namespace",
            team=team,
            requester=owner,
            name=name.removeprefix(f"{TEAM}-"),
            environment="dev",
            lease_days=14,
            spec={"plan": "small"},
            state="active",
            cluster_id=cluster_id,
        )
        for name in names
    )
    resources = Resource.objects.bulk_create(
        Resource(
            id=uuid.uuid4(),
            kind="namespace",
            name=request.name,
            team=team,
            owner=owner,
            environment="dev",
            spec=request.spec,
            lease_days=14,
            created_by_request=request,
            cluster_id=cluster_id,
            state=ResourceState.GRACE,
            activated_at=now - timedelta(days=20),
        )
        for request in requests
    )
    ResourceRequest.objects.bulk_update(
        [setattr(r, "resource", s) or r for r, s in zip(requests, resources, strict=True)], ["resource"]
    )
    Lease.objects.bulk_create(
        Lease(
            resource=resource,
            starts_at=now - timedelta(days=20),
            expires_at=now - timedelta(days=6),
            grace_until=now - timedelta(days=3),
            state=LeaseState.GRACE,
        )
        for resource in resources
    )
    ManagedObject.objects.bulk_create(
        ManagedObject(resource=resource, api_version=v, kind=k, namespace=ns, name=n, applied_at=now)
        for resource, name in zip(resources, names, strict=True)
        for v, k, ns, n in [("v1", "Namespace", "", name), *((v, k, name, n) for v, k, n in INSIDE)]
    )
    return resources


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system) and output of one process, start to exit."""
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, cpu, done.stdout + done.stderr


def _compile(python: Path | str, paths: list[Path]) -> None:
    """Bytecode for each source, as an image build writes it (see the module's docstring)."""
    command = [str(python), "-m", "compileall", "-q", *map(str, paths)]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603


def _janitor_venv(work: Path) -> Path:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "pykube-ng", "jmespath"], check=True, capture_output=True)  # noqa: S603
    return venv / "bin" / "python"


def run(out: Out, sizes: list[int]) -> None:
    source = os.environ.get("KUBE_JANITOR_SRC", "")
    if not source or not (Path(source) / "kube_janitor").is_dir():
        out.note(
            "kube-janitor comparison skipped: set KUBE_JANITOR_SRC to a checkout of kube-janitor "
            "(git clone https://codeberg.org/hjacobs/kube-janitor); it is not on PyPI and never a dependency"
        )
        return
    out.note(f"N = {N} expired namespaces (fixed, as in issue 12; --sizes does not apply)")
    # On an empty database: the leases past grace that bench/reclaim.py seeded would be due in this pass too.
    seed(0)
    names = [f"{TEAM}-jn{uuid.uuid4().hex[:4]}{i}" for i in range(N)]
    core = client.CoreV1Api(cluster.api_client())
    with tempfile.TemporaryDirectory(prefix="bench-janitor-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        janitor_python = _janitor_venv(work)
        _seed_cluster(core, names)
        _seed_database(names)
        _compile(janitor_python, [Path(source) / "kube_janitor"])
        _compile(sys.executable, [ROOT / name for name in (*LEASEHOLD_PACKAGES, "manage.py")])
        out.note(f"seeded (venv, {N} namespaces, {N} due leases) in {time.perf_counter() - started:.0f} s")
        time.sleep(10)  # let the controllers fill the new namespaces (service accounts, CA config maps)
        try:
            _compare(out, janitor_python, Path(source))
        finally:
            cluster.map_bounded(core.delete_namespace, names)


def _compare(out: Out, janitor_python: Path, source: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    janitor_env = {**env, "PYTHONPATH": str(source)}
    leasehold_env = {
        **env,
        "DATABASE_URL": os.environ["DATABASE_URL"],  # the bench's own database (bench/db.py)
        "RECLAIM_MAX_PER_RUN": str(N),
    }
    janitor_cmd = [str(janitor_python), "-m", "kube_janitor", "--dry-run", "--once"]
    leasehold_cmd = [sys.executable, "manage.py", "reclaim_leases", "--dry-run"]
    old_cap = settings.RECLAIM_MAX_PER_RUN
    settings.RECLAIM_MAX_PER_RUN = N
    try:
        janitor_proc, leasehold_proc, janitor_pass, leasehold_pass = [], [], [], []
        janitor_cpu, leasehold_cpu = [], []
        for attempt in range(RUNS + 1):  # the first of each is a warm-up, not counted
            seconds, cpu, text = _process_run(janitor_cmd, janitor_env, source)
            would = text.count("will be deleted")
            seconds_l, cpu_l, text_l = _process_run(leasehold_cmd, leasehold_env, ROOT)
            pass_text = _process_run([str(janitor_python), "-c", JANITOR_PASS], janitor_env, source)[2]
            janitor_alone = float(pass_text.rsplit("PASS ", 1)[1].split()[0])
            connection.close()
            started = time.perf_counter()
            report = reclaim_pass(dry_run=True)
            leasehold_alone = time.perf_counter() - started
            if attempt == 0:
                out.note(
                    f"kube-janitor would delete {would} namespaces; Leasehold would reclaim "
                    f"{len(report.reclaimed)} (deferred {len(report.deferred)}); the command listed "
                    f"{text_l.count(' (resource ')} leases"
                )
                continue
            janitor_proc.append(seconds)
            leasehold_proc.append(seconds_l)
            janitor_cpu.append(cpu)
            leasehold_cpu.append(cpu_l)
            janitor_pass.append(janitor_alone)
            leasehold_pass.append(leasehold_alone)
    finally:
        settings.RECLAIM_MAX_PER_RUN = old_cap
    _rows(out, "process, start to exit", median(janitor_proc), median(leasehold_proc))
    _rows(out, "process, start to exit, CPU time", median(janitor_cpu), median(leasehold_cpu))
    _rows(out, "the pass alone, warm", median(janitor_pass), median(leasehold_pass))
    starts = [_process_run([sys.executable, "-c", DJANGO_START], leasehold_env, ROOT) for _ in range(RUNS)]
    out.row(
        "janitor",
        "of which Leasehold's start-up: python -c 'django.setup()'",
        f"{median([s[0] for s in starts]):.2f} s (CPU {median([s[1] for s in starts]):.2f} s)",
    )


def _rows(out: Out, how: str, janitor: float, leasehold: float) -> None:
    out.row("janitor", f"kube-janitor --dry-run --once, {N} expired ({how})", f"{janitor:.2f} s")
    out.row("janitor", f"reclaim_leases --dry-run, {N} due ({how})", f"{leasehold:.2f} s")
    out.row(
        "janitor",
        f"kube-janitor ÷ Leasehold ({how})",
        f"{janitor / leasehold:.1f}×",
        target="≥ 2×",
        ok=janitor / leasehold >= 2,
    )
