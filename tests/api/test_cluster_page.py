"""The Clusters page (`/clusters/`): per cluster its region, environments, health as the check recorded it
(up, down since … with the error, not checked yet), committed quota against capacity, and the requests
waiting on it with a link to them. Admins and approvers see every cluster, developers those they may place
on (as GET /api/v1/clusters/); the queries are as many with five clusters as with one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app.models import Cluster, ResourceRequest, default_cluster_pk
from requests_app.services import request_submit
from tests.conftest import namespace_body
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/clusters/"


def down(name: str, detail: str, *, minutes: int = 12) -> None:
    """As the health check leaves a cluster it cannot reach."""
    since = timezone.now() - timedelta(minutes=minutes)
    Cluster.objects.filter(name=name).update(
        healthy=False, unhealthy_since=since, health_checked_at=timezone.now(), health_detail=detail
    )


def file(requester, name: str, cluster: str, state: str = "approved") -> ResourceRequest:
    """A namespace request on `cluster`, moved to `state` as approval and the worker would."""
    filed = request_submit(requester=requester, **namespace_body(name=name, cluster=cluster))
    ResourceRequest.objects.filter(pk=filed.pk).update(state=state)
    return filed


@pytest.fixture
def fleet(db):
    """`default` (up), `dc-b` (down, with capacity from its nodes and the admin) and `closed` (not checked,
    taking no new requests)."""
    default_cluster_pk()
    Cluster.objects.filter(name="default").update(healthy=True, health_checked_at=timezone.now())
    Cluster.objects.create(
        name="dc-b", environments=["dev", "test"], region="eu-west-1a", allocatable_cpu="40", nodes_memory="64Gi"
    )
    down("dc-b", "Kubernetes API unreachable: <connection refused>")
    Cluster.objects.create(name="closed", environments=["dev"], accepting=False)


def test_an_admin_sees_every_cluster_with_its_health_capacity_and_waiting_requests(
    client, admin_user, requester, fleet
):
    file(requester, "one", "dc-b")
    file(requester, "two", "dc-b")
    file(requester, "three", "dc-b", state="provisioning")
    file(requester, "four", "dc-b", state="pending_approval")  # committed, not waiting on the cluster
    client.force_login(admin_user)
    response = client.get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert [row.cluster.name for row in response.context["rows"]] == ["closed", "dc-b", "default"]
    b = page[page.index('id="cluster-dc-b"') : page.index('id="cluster-default"')]
    assert "eu-west-1a" in b and "dev, test" in b
    assert '<span class="badge failed">down</span> since ' in b and "(12\xa0minutes)" in b
    # The error, escaped like any text.
    assert "Kubernetes API unreachable: &lt;connection refused&gt;" in b and "<connection refused>" not in b
    # Three medium namespaces not provisioned yet (4 CPUs, 8 GiB, 50 GiB each: the one provisioning counts by
    # its resource, which the worker has not made here) against 40 CPUs (the admin's) and 64 GiB (the nodes').
    assert '<th scope="row">CPU</th><td>12 CPUs</td><td>40 CPUs</td><td>30%</td>' in b
    assert '<td>24 GiB</td><td>64 GiB <span class="muted">(from the nodes)</span></td><td>37%</td>' in b
    assert "<td>150 GiB</td><td>no limit</td><td>—</td>" in b
    assert '<a href="/requests/?cluster=dc-b&amp;state=approved">2 approved, waiting for a worker</a>' in b
    assert '<a href="/requests/?cluster=dc-b&amp;state=provisioning">1 provisioning</a>' in b
    assert '<span class="badge active">up</span>' in page[page.index('id="cluster-default"') :]
    closed = page[page.index('id="cluster-closed"') : page.index('id="cluster-dc-b"')]
    assert "not checked yet" in closed and "not taking new requests" in closed


def test_the_link_lists_the_requests_waiting_on_that_cluster(client, requester, fleet):
    waiting = file(requester, "one", "dc-b")
    file(requester, "elsewhere", "default")
    file(requester, "done", "dc-b", state="active")
    client.force_login(requester)
    listed = client.get("/requests/?cluster=dc-b&state=approved")
    assert [r.pk for r in listed.context["page"].rows] == [waiting.pk]
    assert 'name="cluster" maxlength="40" value="dc-b"' in listed.content.decode()  # kept by the filter form


def test_a_developer_sees_the_clusters_they_may_place_on_and_their_own_waiting_requests(
    client, requester, outsider, fleet
):
    outsider_body = namespace_body(name="theirs", cluster="dc-b", team="zephyr")
    theirs = request_submit(requester=outsider, **outsider_body)
    ResourceRequest.objects.filter(pk=theirs.pk).update(state="approved")
    file(requester, "mine", "dc-b")
    client.force_login(requester)
    response = client.get(PAGE)
    assert [row.cluster.name for row in response.context["rows"]] == ["dc-b", "default"]  # as GET /api/v1/clusters/
    (b,) = [row for row in response.context["rows"] if row.cluster.name == "dc-b"]
    assert b.waiting[0].count == 1  # another team's request is not counted, as the link would not list it


def test_an_approver_in_no_team_sees_every_cluster(client, approver, requester, fleet):
    file(requester, "pending", "dc-b", state="pending_approval")  # a step of platform-approvers
    client.force_login(approver)
    assert [row.cluster.name for row in client.get(PAGE).context["rows"]] == ["closed", "dc-b", "default"]


def test_who_may_place_nowhere_sees_no_cluster_and_an_anonymous_visitor_logs_in(client, fleet):
    client.force_login(UserFactory(username="nobody", groups=[]))
    response = client.get(PAGE)
    assert response.context["rows"] == [] and "you may place requests on none" in response.content.decode()
    client.logout()
    assert client.get(PAGE).status_code == 302


@pytest.mark.parametrize("persona", ["admin_user", "requester"])
def test_the_page_costs_the_same_queries_with_one_cluster_or_five(client, request, requester, persona):
    user = request.getfixturevalue(persona)
    default_cluster_pk()
    client.force_login(user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(PAGE).status_code == 200
        return len(ctx.captured_queries)

    file(requester, "first", "default")
    one = queries()
    for n in range(4):
        Cluster.objects.create(name=f"dc-{n}", environments=["dev"], allocatable_cpu="64")
        file(requester, f"ns{n}", f"dc-{n}", state="provisioning")
    down("dc-0", "Kubernetes API unreachable")
    assert len(client.get(PAGE).context["rows"]) == 5
    assert queries() == one
