"""Fixtures for the metrics and logs tests: a scrape of /metrics as Prometheus makes it."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisioning import cluster
from requests_app.services import request_submit
from tests.faults.conftest import proxy  # noqa: F401  (the fault proxy in front of the API server)
from tests.faults.proxy import write_kubeconfig
from tests.integration.conftest import (  # noqa: F401  (fixtures shared with the integration tests)
    approved_namespace,
    celery_processes,
    cleanup_namespaces,
    core,
    kube_api,
)
from tests.leases.test_backup import backup_namespace, namespace_with_database  # noqa: F401  (fixtures)

METRICS_PORT = "9100"


def file_namespace(requester, name: str = "checkout", environment: str = "dev"):
    """A medium namespace for team atlas: one platform-approvers step in dev (the built-in policy)."""
    return request_submit(
        requester=requester,
        team="atlas",
        kind="namespace",
        name=name,
        environment=environment,
        lease_days=14,
        justification="metrics test",
        spec={"plan": "medium"},
    )


class Scrape:
    """One scrape of /metrics, parsed: `value(name, **labels)` is a sample's value (0 when absent)."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value for f in self.families.values() for s in f.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def names(self) -> set[str]:
        """Every metric name served: the families (also those without samples yet, with the names their
        samples will have) and their samples."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        declared = {f.name + s for f in self.families.values() for s in suffixes.get(f.type, ("",))}
        return declared | {name for name, _ in self.samples}


@pytest.fixture
def scrape(client):
    """Scrape /metrics as Prometheus does: on the metrics port, by the pod's address."""

    def get() -> Scrape:
        response = client.get("/metrics", SERVER_PORT=METRICS_PORT, HTTP_HOST="10.1.2.3:9100")
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(response.content.decode())

    return get


@pytest.fixture
def through_the_proxy(proxy, tmp_path, monkeypatch, settings):  # noqa: F811  (the fixture imported above)
    """This process reaches the API server through the fault proxy."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", proxy.url, os.environ["LEASEHOLD_K8S_ADMIN_TOKEN"])
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    settings.LEASEHOLD_K8S_BACKOFF_SECONDS = settings.LEASEHOLD_K8S_BACKOFF_MAX_SECONDS = 0.01
    cluster.reset_clients()
    yield proxy
    cluster.reset_clients()
