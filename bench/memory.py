"""Resident memory (RSS, psutil) of the web process and of a Celery worker, after they did real work on
the bench database (at the largest size seeded so far).

- Web: gunicorn with config/gunicorn.py (the production server: 2 processes of 4 threads) as a
  subprocess, after a few hundred HTTP requests over every page of bench/lists.py, as their users: the
  master and each worker process.
- Worker: `celery -A config worker` with the project's settings (prefork, one child per CPU), after it
  provisioned namespaces the benchmark filed (on the local Kubernetes API server) and ran the periodic
  tasks that do not walk the whole cluster: the parent and each child.
"""

from __future__ import annotations

import os
import socket
import subprocess  # noqa: S404  (the processes measured are this project's own commands)
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
from django.conf import settings
from django.test import Client

from accounts.models import ApiToken
from bench.common import Out
from bench.lists import pages
from bench.seed import people, seed
from requests_app.models import RequestState, ResourceRequest

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 150
ROUNDS = 15  # every page this many times: a few hundred requests
FILED = 10  # namespaces the worker provisions
# Periodic tasks sent to the worker. Left out: the stuck-request sweep and the drift reconcile, which on
# seeded rows would provision or read thousands of objects that the local API server never had.
PERIODIC = (
    "leases.tasks.reclaim_leases",
    "leases.tasks.follow_reclaiming",
    "approvals.tasks.nudge_waiting_approvals",
    "requests_app.tasks.deliver_pending_mail",
)


def _mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 1024 / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (our own server on loopback)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        response.read()
        return response.status


def _wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited with {process.returncode}")
        try:
            _get(url, {"X-Forwarded-Proto": "https"})
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the web server did not answer within a minute")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def web(out: Out) -> None:
    cast = people()
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
        "GUNICORN_HOST": "127.0.0.1",
        "LEASEHOLD_METRICS_PORT": "0",
    }
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/healthz", server)
        started_mb = _mb(psutil.Process(server.pid))
        headers: dict[tuple[str, bool], dict[str, str]] = {}
        for who, user in (("team member", cast.member), ("admin", cast.admin), ("approver", cast.approver)):
            client = Client()
            client.force_login(user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            _, key = ApiToken.objects.create(user)
            common = {"Host": "localhost", "X-Forwarded-Proto": "https"}
            headers[(who, False)] = {**common, "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
            headers[(who, True)] = {**common, "Authorization": f"Token {key}"}
        calls, failed, began = 0, 0, time.perf_counter()
        for _ in range(ROUNDS):
            for page in pages(cast):
                try:
                    _get(base + page.path, headers[(page.who, page.api)])
                except OSError:
                    failed += 1
                calls += 1
        master = psutil.Process(server.pid)
        workers = [_mb(child) for child in master.children()]
        rss = max(workers, default=0.0)
        out.note(
            f"web: {calls} requests in {time.perf_counter() - began:.0f} s ({failed} failed); "
            f"master RSS {started_mb:.0f} MB at start, {_mb(master):.0f} MB after"
        )
        out.row(
            "memory",
            f"web (gunicorn, {len(workers)} worker processes) after {calls} requests, the largest",
            f"{rss:.0f} MB RSS ({', '.join(f'{w:.0f}' for w in workers)})",
            f"≤ {TARGET_MB} MB",
            rss <= TARGET_MB and not failed,
        )
    finally:
        _stop(server)


def worker(out: Out) -> None:
    if not os.environ.get("REDIS_URL"):
        out.note("worker: no REDIS_URL (no broker), skipped")
        return
    from config.celery import app
    from requests_app.services import request_submit

    cast = people()
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING"],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        parent = psutil.Process(process.pid)
        deadline = time.monotonic() + 60
        while len(parent.children()) < (os.cpu_count() or 1) and time.monotonic() < deadline:
            time.sleep(0.5)
        tag = uuid.uuid4().hex[:6]
        filed = [
            request_submit(
                requester=cast.member,
                team=cast.team.slug,
                kind="namespace",
                name=f"mem-{tag}-{i}",
                environment="dev",
                lease_days=7,
                spec={"plan": "small"},
            ).pk
            for i in range(FILED)
        ]
        began = time.perf_counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = ResourceRequest.objects.filter(pk__in=filed).exclude(
                state__in=[RequestState.ACTIVE, *ResourceRequest.TERMINAL]
            )
            if not left.exists():
                break
            time.sleep(1)
        states = sorted(ResourceRequest.objects.filter(pk__in=filed).values_list("state", flat=True))
        out.note(f"worker: {FILED} namespaces filed, after {time.perf_counter() - began:.0f} s: {', '.join(states)}")
        for name in PERIODIC:
            app.send_task(name)
        time.sleep(20)  # the periodic tasks are small at this size; their results are not kept
        parent_mb = _mb(parent)
        children = [(c.pid, _mb(c)) for c in parent.children()]
        out.note(
            "worker: RSS parent {:.0f} MB; children {}".format(
                parent_mb, ", ".join(f"{mb:.0f} MB (pid {pid})" for pid, mb in children)
            )
        )
        worst = max([parent_mb, *(mb for _, mb in children)])
        out.row(
            "memory",
            f"Celery worker (prefork, {len(children)} children) after provisioning and periodic tasks",
            f"parent {parent_mb:.0f} MB; children {', '.join(f'{mb:.0f}' for _, mb in children)} MB",
            f"≤ {TARGET_MB} MB each",
            worst <= TARGET_MB,
        )
    finally:
        _stop(process)


def run(out: Out, sizes: list[int]) -> None:
    seed(max(sizes))
    web(out)
    worker(out)
