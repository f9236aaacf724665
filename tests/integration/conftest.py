"""Fixtures for tests against the real services that `make test` starts."""

from __future__ import annotations

import os
import time

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from approvals.services import step_decide
from provisioning import cluster
from requests_app.services import request_submit
from tests.conftest import require_env


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
    """An approved namespace request (medium plan, one platform step), not yet provisioned."""

    def make(name: str | None = None, plan: str = "medium"):
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
        )
        step = request.approval_steps.get()
        step_decide(step_id=step.pk, user=approver, verdict="approve")
        request.refresh_from_db()
        assert request.state == "approved"
        return request

    return make
