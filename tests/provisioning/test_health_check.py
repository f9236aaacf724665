"""The health check's parts that need no second control plane: a cluster whose credentials are gone is down
with an error that names its path and holds no credential; two checks at once record a change once; the
nodes' allocatable is summed as Kubernetes quantities."""

from __future__ import annotations

import pytest
from django.utils import timezone

from provisioning.services import health
from provisioning.services.health import Probe, clusters_check, error_detail, nodes_allocatable
from requests_app.models import AuditEvent, Cluster

GONE = "/var/run/leasehold/gone/token"


@pytest.fixture
def gone(db):
    """A cluster last seen up whose token file is missing (as after a Secret was deleted)."""
    return Cluster.objects.create(
        name="gone",
        auth="token",
        api_server="https://127.0.0.1:1",
        credentials_path=GONE,
        environments=["dev"],
        healthy=True,
    )


def test_a_cluster_without_its_token_file_is_down_with_the_path_as_the_reason(gone):
    (result,) = clusters_check(names=["gone"])
    gone.refresh_from_db()
    assert (result.change, gone.healthy, gone.unhealthy_since) == ("unreachable", False, gone.health_checked_at)
    assert gone.health_detail == f"cluster gone: no credentials file at {GONE}."


def test_two_checks_at_once_record_going_down_once(gone):
    seen_by_the_slower_check = Cluster.objects.get(pk=gone.pk)  # read before the other check recorded
    clusters_check(names=["gone"])
    now = timezone.now()
    probe = Probe(healthy=False, detail="down too")
    fields = health._changed_fields(seen_by_the_slower_check, probe, now)
    late = health._record(seen_by_the_slower_check, probe, fields, now)
    assert late.change == "" and late.detail == f"cluster gone: no credentials file at {GONE}."
    assert AuditEvent.objects.filter(verb="cluster_unreachable", target_id=str(gone.pk)).count() == 1


def test_an_error_keeps_no_credential_and_is_truncated():
    text = error_detail(
        RuntimeError(
            "GET https://leasehold:s3cret@api.example.org/readyz Authorization: Bearer abc.def-123 "
            "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln " + "x" * 400
        )
    )
    assert "s3cret" not in text and "abc.def-123" not in text and "eyJ" not in text
    assert text.startswith("RuntimeError: GET https://[hidden]@api.example.org/readyz Authorization: Bearer [hidden]")
    assert len(text) == health.DETAIL_MAX and text.endswith("…")


def test_the_nodes_allocatable_is_summed_as_quantities():
    nodes = [
        {"status": {"allocatable": {"cpu": "3500m", "memory": "16Gi"}}},
        {"status": {"allocatable": {"cpu": "4", "memory": "8054012Ki"}}},
        {"status": {"allocatable": {"cpu": "many", "memory": "-1Gi"}}},  # unreadable: left out
        {"metadata": {"name": "no-status-yet"}},
    ]
    assert nodes_allocatable(nodes) == ("7500m", "24831228Ki")
    assert nodes_allocatable([{"status": {"allocatable": {"cpu": "64", "memory": "256Gi"}}}]) == ("64", "256Gi")
    assert nodes_allocatable([]) == ("", "")  # no nodes: no figure, not a capacity of zero
