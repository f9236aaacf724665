"""Fixtures for tests against the real services that `make test` starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from approvals.services import step_decide
from config.celery import app as celery_app
from provisioning import cluster
from requests_app.models import Resource
from requests_app.services import request_submit
from tests.conftest import require_env
from tests.factories import app_template


@pytest.fixture(scope="session")
def kube_api():
    """A plain ApiClient on the test cluster (for checking what the service did, and cleaning up)."""
    require_env("KUBECONFIG")
    cluster.reset_clients()
    return config.new_client_from_config(config_file=os.environ["KUBECONFIG"])


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


@pytest.fixture
def cleanup_namespaces(core):
    """Namespaces a test names here are deleted afterwards, whatever the test did."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def approve_and_provision(request, approver):
    """Decide every pending step as `approver`, run the worker's service, and return the request active."""
    from provisioning.services.provision import request_provision

    while step := request.approval_steps.filter(state="pending").first():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active", request.error
    return request


def file_and_provision(requester, approver, **fields):
    """File a request for team atlas (dev, 7 days), approve it and provision it; returns it active."""
    fields.setdefault("justification", "integration test")
    request = request_submit(requester=requester, team="atlas", environment="dev", lease_days=7, **fields)
    return approve_and_provision(request, approver)


def namespace_gone(core, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.fixture
def approved_namespace(requester, approver, unique_name, cleanup_namespaces):
    """An approved namespace request (medium plan: one platform step), not yet provisioned; on the cluster
    named, else where placement puts it."""

    def make(name: str | None = None, plan: str = "medium", cluster: str | None = None):
        name = name or unique_name
        cleanup_namespaces.append(f"atlas-{name}")
        request = request_submit(
            requester=requester,
            team="atlas",
            kind="namespace",
            name=name,
            environment="dev",
            lease_days=14,
            justification="integration test",
            spec={"plan": plan},
            **({"cluster": cluster} if cluster else {}),
        )
        for step in request.approval_steps.all():  # one platform step for medium, none for small
            step_decide(step_id=step.pk, user=approver, verdict="approve")
        request.refresh_from_db()
        assert request.state == "approved"
        return request

    return make


def provisioned_namespace(approved_namespace) -> Resource:
    """A namespace of its own name, approved and provisioned on the test cluster: its resource."""
    from provisioning.services.provision import request_provision

    request = approved_namespace(f"r{uuid.uuid4().hex[:10]}")
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active", request.error
    return request.resource


ROOT = Path(__file__).resolve().parents[2]

# Settings for worker processes in tests that need retries, the sweep and the reconcile to happen
# within seconds: the same code paths, shorter delays.
FAST_RETRIES = {
    "LEASEHOLD_K8S_TIMEOUT": "5",
    "LEASEHOLD_K8S_BACKOFF_SECONDS": "0.02",
    "LEASEHOLD_K8S_BACKOFF_MAX_SECONDS": "0.5",
    "LEASEHOLD_RETRY_BACKOFF_SECONDS": "0.2",
    "LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS": "2",
    "LEASEHOLD_PROVISION_CLAIM_SECONDS": "10",
    "LEASEHOLD_PROVISION_STUCK_MINUTES": "0.03",
    "LEASEHOLD_SWEEP_SECONDS": "1",
    "LEASEHOLD_RECONCILE_SECONDS": "2",
}


class CeleryProcess:
    """A real `celery -A config worker` (or `beat`) process; its output goes to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> CeleryProcess:
        marker = "ready." if self.args[0] == "worker" else "beat: Starting"
        what = f"celery {self.args[0]} to start"
        wait_for(lambda: marker in self.output() or self.proc.poll() is not None, timeout, what=what)
        assert self.proc.poll() is None, self.output()[-3000:]
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no ack, no clean-up (this process only, by its pid)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def test_database_url() -> str:
    """The test database, as a DATABASE_URL for processes started by a test."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def celery_processes(transactional_db, tmp_path) -> Callable[..., CeleryProcess]:
    """Start real Celery processes on the test database: `start("worker", env={...})`, `start("beat")`.

    Each gets the test's environment plus `env`; all are stopped when the test ends (before the
    database is flushed), and the end of each one's output is printed for a failing test's report.
    """
    require_env("REDIS_URL", "DATABASE_URL", "KUBECONFIG")
    started: list[CeleryProcess] = []

    def start(kind: str = "worker", *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> CeleryProcess:
        full_env = dict(os.environ)
        full_env["DATABASE_URL"] = test_database_url()
        # No metrics server on the shared machine's 9100 unless a test asks for one (tests/metrics).
        full_env["LEASEHOLD_METRICS_PORT"] = "0"
        full_env.update(env or {})
        n = len(started)
        if kind == "worker":
            argv = [
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                f"--hostname=test{n}@%h",
                *args,
            ]
        else:
            argv = ["beat", "--loglevel=INFO", f"--schedule={tmp_path / f'beat-{n}'}", *args]
        process = CeleryProcess(argv, full_env, tmp_path / f"celery-{kind}-{n}.log")
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
        print(f"---- celery {process.args[0]} (pid {process.pid}) ----")
        print(process.output()[-4000:])


@pytest.fixture
def worker(celery_processes):
    """A real `celery -A config worker` process on the test database and the test Redis."""
    require_env("LDAP_URI")
    purge_queues()
    return celery_processes("worker").proc


def purge_queues(clusters: tuple[str, ...] = ("default", "b")) -> None:
    """Drop the messages earlier tests left: Celery's default queue and the clusters' queues."""
    celery_app.control.purge()
    with celery_app.connection_for_write() as connection:
        for name in clusters:
            connection.default_channel.queue_purge(f"cluster.{name}")


def file_app(namespace_request, requester, approver, lease_days: int = 7, replicas: int = 1):
    """File an app `shop` (template web) in an active namespace, approve it and provision it; returns the
    app's Resource, active."""
    app_template("web")
    filed = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name="shop",
        environment="dev",
        lease_days=lease_days,
        justification="t",
        spec={"namespace": str(namespace_request.resource_id), "template": "web", "replicas": replicas},
    )
    return Resource.objects.get(pk=approve_and_provision(filed, approver).resource_id)


def token_kubeconfig(path: Path, token: str) -> Path:
    """A kubeconfig for the test cluster (its server and CA) that authenticates with `token`."""
    cluster = {
        "server": os.environ["LEASEHOLD_K8S_SERVER"],
        "certificate-authority": os.environ["LEASEHOLD_K8S_CA_FILE"],
    }
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path
