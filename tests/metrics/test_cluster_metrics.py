"""The clusters' gauges (provisioning.metrics.ClustersCollector): health as the check recorded it, committed
quota and capacity per resource, read from the database at scrape time in the same number of queries
however many clusters there are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app.models import Cluster, default_cluster_pk
from requests_app.services import request_submit
from tests.conftest import namespace_body

pytestmark = pytest.mark.django_db

GI = 1024**3


def test_the_clusters_health_committed_quota_and_capacity_are_served(scrape, requester):
    default_cluster_pk()
    Cluster.objects.create(
        name="dc-b", environments=["dev"], allocatable_cpu="64", nodes_memory="128Gi", overcommit="1.5"
    )
    Cluster.objects.filter(name="dc-b").update(healthy=False, unhealthy_since=timezone.now())
    Cluster.objects.filter(name="default").update(healthy=True)
    request_submit(requester=requester, **namespace_body(cluster="dc-b"))  # medium: 4 CPU, 8Gi, 50Gi
    got = scrape()
    assert got.value("leasehold_cluster_healthy", cluster="dc-b") == 0
    assert got.value("leasehold_cluster_healthy", cluster="default") == 1
    assert got.value("leasehold_cluster_committed", cluster="dc-b", resource="cpu") == 4
    assert got.value("leasehold_cluster_committed", cluster="dc-b", resource="memory") == 8 * GI
    assert got.value("leasehold_cluster_committed", cluster="dc-b", resource="storage") == 50 * GI
    assert got.value("leasehold_cluster_capacity", cluster="dc-b", resource="cpu") == 96
    assert got.value("leasehold_cluster_capacity", cluster="dc-b", resource="memory") == 192 * GI  # the nodes'
    assert not got.has("leasehold_cluster_capacity", cluster="dc-b", resource="storage")  # no limit


def test_a_cluster_not_checked_yet_has_no_health_sample(scrape):
    default_cluster_pk()
    got = scrape()
    assert "leasehold_cluster_healthy" in got.names()
    assert not got.has("leasehold_cluster_healthy", cluster="default")


def test_a_scrape_reads_the_clusters_in_the_same_queries_with_one_or_five(scrape, requester):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            scrape()
        return len(ctx.captured_queries)

    default_cluster_pk()
    one = queries()
    for n in range(4):
        Cluster.objects.create(name=f"dc-{n}", environments=["dev"], allocatable_cpu="8")
        request_submit(requester=requester, **namespace_body(name=f"ns{n}", cluster=f"dc-{n}"))
    assert queries() == one
