"""Provisioning against the raw API speed, measured in one run on the local API server:

(a) approved → `active` for one namespace: the worker's provisioning service run in this process
    (`request_provision`, exactly what the Celery task calls, without the broker's hop), against the
    same five manifests applied raw with `cluster.apply` one after another; medians of RUNS each. The
    platform step's decision before it is timed too and shown beside it.
(b) 50 namespace requests approved with one `steps_approve_many` call → all 50 `active`, provisioned by
    a real `celery -A config worker` process (the project's default settings: prefork, concurrency =
    CPU count) on the same Redis and database, against 250 raw `cluster.apply` calls one after another;
    median of ROUNDS rounds.

Beside the wall times, the CPU time (of this process; for (b) also of the worker's processes, with
psutil) and the SQL statements (of this process's connection: the run and the decision in (a), the
approve-many call in (b), BEGIN, COMMIT and savepoints included) are shown: on a shared machine they move
less than the wall times.

The requests are real (filed by a team member, routed by the built-in policy: a medium dev namespace
needs one platform approver, decided by `frank`, whom the directory confirms). Every namespace made
here, by Leasehold or raw, is deleted at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.services import step_decide, steps_approve_many
from bench.common import Out, median, ms
from config.celery import app as celery_app
from config.startup import freeze_loaded
from provisioning import cluster
from provisioning.services.plan import render_request
from provisioning.services.provision import request_provision
from requests_app.models import RequestState, ResourceRequest
from requests_app.services import request_submit

RUNS = 10
WARMUP = 2
ROUNDS = 3
MANY = 50
ROOT = Path(__file__).resolve().parents[1]
TASK_DONE = re.compile(r"provisioning\.tasks\.provision_request\[[^]]+\] succeeded in ([0-9.]+)s")


def _user(username: str, groups: list[str]):
    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


class Namespaces:
    """Files namespace requests with names of this run, and remembers every namespace to delete."""

    def __init__(self, requester) -> None:
        self.requester = requester
        self.tag = uuid.uuid4().hex[:6]
        self.count = 0
        self.names: list[str] = []

    def file(self) -> ResourceRequest:
        self.count += 1
        name = f"pb{self.tag}{self.count}"
        self.names.append(f"atlas-{name}")
        return request_submit(
            requester=self.requester,
            team="atlas",
            kind="namespace",
            name=name,
            environment="dev",
            lease_days=14,
            justification="bench/provision.py",
            spec={"plan": "medium"},
        )

    def delete_all(self) -> None:
        refs = [cluster.ObjectRef("v1", "Namespace", "", name) for name in self.names]
        cluster.map_bounded(cluster.delete, refs)


class CallCounter:
    """Counts the HTTP calls this process makes to the API server (the one function they all go through)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._real: Callable | None = None

    def __enter__(self) -> CallCounter:
        real = self._real = cluster._request

        def counted(method: str, path: str, **kwargs):
            self.calls.append(method)
            return real(method, path, **kwargs)

        cluster._request = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *exc) -> None:
        cluster._request = self._real  # type: ignore[assignment]


def _raw_apply(manifests: list[dict]) -> float:
    start = time.perf_counter()
    for manifest in manifests:
        cluster.apply(manifest)
    return time.perf_counter() - start


def _one_namespace(out: Out, namespaces: Namespaces, approver) -> None:
    provision, total, raw, calls = [], [], [], []
    cpu, raw_cpu, statements, decision_statements = [], [], [], []
    for i in range(WARMUP + RUNS):
        request = namespaces.file()
        step = request.approval_steps.get()
        raw_manifests = render_request(namespaces.file())
        with CallCounter() as counter:
            with CaptureQueriesContext(connection) as deciding:
                start = time.perf_counter()
                step_decide(step_id=step.pk, user=approver, verdict="approve")
                decided = time.perf_counter()
            with CaptureQueriesContext(connection) as running:
                cpu_start = time.process_time()
                request_provision(request_id=request.pk)
                end = time.perf_counter()
                cpu_end = time.process_time()
        request.refresh_from_db()
        if request.state != RequestState.ACTIVE:
            raise RuntimeError(f"request {request.pk} ended {request.state}: {request.error}")
        raw_cpu_start = time.process_time()
        raw_time = _raw_apply(raw_manifests)
        raw_cpu_end = time.process_time()
        if i >= WARMUP:
            provision.append(end - decided)
            total.append(end - start)
            raw.append(raw_time)
            calls.append(len(counter.calls))
            cpu.append(cpu_end - cpu_start)
            raw_cpu.append(raw_cpu_end - raw_cpu_start)
            statements.append(len(running.captured_queries))
            decision_statements.append(len(deciding.captured_queries))
    ratio = median(provision) / median(raw)
    section = "provision"
    out.row(section, "approved → active, one namespace (the worker's provisioning run)", ms(median(provision)))
    out.row(section, "same 5 manifests applied raw, sequentially", ms(median(raw)))
    out.row(section, "approved → active / raw", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5)
    with_decision = f"{ms(median(total))} ({median(total) / median(raw):.2f}× raw)"
    out.row(section, "  with the approval decision before it", with_decision)
    out.row(section, "API calls per namespace (5 objects)", f"{median(calls):g}")
    out.row(section, "  CPU of this process: the run / the raw applies", f"{ms(median(cpu))} / {ms(median(raw_cpu))}")
    out.row(
        section,
        "  SQL statements: the run / the decision before it",
        f"{median(statements):g} / {median(decision_statements):g}",
    )
    out.note(f"(a) medians of {RUNS} runs after {WARMUP} warm-up runs, in this process")


class Worker:
    """A real `celery -A config worker` process with the project's default worker settings."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--hostname=bench@%h"],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def task_seconds(self) -> list[float]:
        """How long each provisioning task took in the worker, as its log says."""
        found = TASK_DONE.findall(self.log_path.read_text(errors="replace"))
        return [float(seconds) for seconds in found]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Round:
    """One approve-many round: seconds until the call returned and until all were active, the CPU seconds
    of this process during the call and of the worker's processes in the round, the call's SQL statements."""

    call: float
    done: float
    call_cpu: float = 0.0
    worker_cpu: float = 0.0
    statements: int = 0


def _cpu_of(process: psutil.Process | None) -> float:
    """CPU seconds of a process and its children so far."""
    if process is None:
        return 0.0
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _approve_all_and_wait(
    requests: list[ResourceRequest], approver, timeout: float = 120, worker: psutil.Process | None = None
) -> Round:
    """Approve every request's pending step with one approve-many call; seconds until the call returned
    and until every request was active."""
    steps = [str(r.approval_steps.get().pk) for r in requests]
    ids = [r.pk for r in requests]
    worker_start = _cpu_of(worker)
    with CaptureQueriesContext(connection) as calling:
        cpu_start = time.process_time()
        start = time.perf_counter()
        outcomes = steps_approve_many(step_ids=steps, user=approver)
        returned = time.perf_counter()
        call_cpu = time.process_time() - cpu_start
    refused = [o for o in outcomes if not o.ok]
    if refused:
        raise RuntimeError(f"approve-many refused {len(refused)} steps: {refused[0].detail}")
    while True:
        states = dict(ResourceRequest.objects.filter(pk__in=ids).values_list("pk", "state"))
        if all(state == RequestState.ACTIVE for state in states.values()):
            done = time.perf_counter() - start
            worker_cpu = _cpu_of(worker) - worker_start
            return Round(returned - start, done, call_cpu, worker_cpu, len(calling.captured_queries))
        failed = [pk for pk, state in states.items() if state == RequestState.FAILED]
        if failed:
            raise RuntimeError(f"request {failed[0]} failed: {ResourceRequest.objects.get(pk=failed[0]).error}")
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"not all active after {timeout}s: {sorted(states.values())}")
        time.sleep(0.01)


def _many_at_once(out: Out, namespaces: Namespaces, approver) -> None:
    celery_app.control.purge()  # the messages (a) published: its requests are active already
    with tempfile.TemporaryDirectory() as tmp:
        worker = Worker(Path(tmp) / "worker.log")
        try:
            worker.wait_ready()
            _approve_all_and_wait([namespaces.file() for _ in range(4)], approver)  # warm both worker processes
            rounds, raw, raw_cpu = [], [], []
            warm = len(worker.task_seconds())
            process = psutil.Process(worker.proc.pid)
            for _ in range(ROUNDS):
                requests = [namespaces.file() for _ in range(MANY)]
                raw_manifests = [m for _ in range(MANY) for m in render_request(namespaces.file())]
                rounds.append(_approve_all_and_wait(requests, approver, worker=process))
                cpu_start = time.process_time()
                raw.append(_raw_apply(raw_manifests))
                raw_cpu.append(time.process_time() - cpu_start)
            tasks = worker.task_seconds()[warm:]
        finally:
            worker.stop()
    done = [r.done for r in rounds]
    ratio = median(done) / median(raw)
    section = "provision"
    concurrency = os.cpu_count()
    out.row(section, f"{MANY} approved at once → all active (worker, prefork ×{concurrency})", ms(median(done)))
    out.row(section, "  of which the approve-many call", ms(median([r.call for r in rounds])))
    out.row(
        section,
        "  CPU: the approve-many call / the worker's processes in the round / the raw applies",
        f"{ms(median([r.call_cpu for r in rounds]))} / {ms(median([r.worker_cpu for r in rounds]))} / "
        f"{ms(median(raw_cpu))}",
    )
    out.row(section, "  SQL statements of the approve-many call", f"{median([r.statements for r in rounds]):g}")
    out.row(section, "  one provisioning task in the worker (median)", ms(median(tasks)) if tasks else "?")
    out.row(section, f"{MANY * 5} raw applies, sequentially", ms(median(raw)))
    out.row(section, f"{MANY} at once / raw", f"{ratio:.2f}×", "≤ 2×", ratio <= 2)
    out.note(f"(b) medians of {ROUNDS} rounds; each round's times: {', '.join(ms(d) for d in done)}")


def run(out: Out, sizes: list[int]) -> None:
    del sizes  # provisioning does not depend on how many requests the database holds
    # The decision notices are composed and queued as ever; only their printing to the console is spared.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    requester = _user("dana", ["team-atlas"])
    approver = _user("frank", ["platform-approvers"])
    namespaces = Namespaces(requester)
    freeze_loaded()  # as the Celery worker this process stands in for in (a) does (config/startup.py)
    try:
        _one_namespace(out, namespaces, approver)
        _many_at_once(out, namespaces, approver)
    finally:
        namespaces.delete_all()
