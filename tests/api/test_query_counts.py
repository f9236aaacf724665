"""The lists and the request page issue a number of queries that does not grow with the data; the lists
come a page at a time, filtered like the API."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalChain, ApprovalStep, Decision
from provisioning.models import ManagedObject, Release
from requests_app.models import ResourceRequest
from tests.factories import LeaseFactory, active_child, active_namespace

pytestmark = pytest.mark.django_db


def make_requests(team, user, count):
    for i in range(count):
        active_namespace(team, user, name=f"ns{i}")
    return ResourceRequest.objects.first()


def make_resources(team, user, count, start=0):
    """`count` resources of each kind, each with a lease and objects (and releases for apps): every
    section of the resource representation has rows to read."""
    frozen = {"provider": "statefulset"}
    for i in range(start, start + count):
        namespace = active_namespace(team, user, name=f"ns{i}")
        database_spec = {"engine": "postgres", "version": "16", "storage": "10Gi", "plan": "small"}
        database = active_child(namespace, "database", f"db{i}", database_spec, owner=user, frozen=frozen)
        app = active_child(
            namespace, "app", f"app{i}", {"template": "web", "image_tag": "1.0.0"}, owner=user, frozen=frozen
        )
        Release.objects.create(
            resource=app, number=1, request=app.created_by_request, image_tag="1.0.0", spec={}, manifests=[]
        )
        for resource in (namespace, database, app):
            LeaseFactory(resource=resource)
            ManagedObject.objects.create(
                resource=resource, api_version="v1", kind="ConfigMap", namespace=f"atlas-ns{i}", name=resource.name
            )


@pytest.mark.parametrize("count", [5, 50])
def test_the_request_list_page_and_api_do_not_grow_with_requests(
    client, api, requester, atlas, count, django_assert_max_num_queries
):
    make_requests(atlas, requester, count)
    client.force_login(requester)
    api.as_(requester)
    with django_assert_max_num_queries(8):
        assert client.get("/requests/").status_code == 200
    with django_assert_max_num_queries(10):
        assert len(api.get("/api/v1/requests/").json()["results"]) == count
    with django_assert_max_num_queries(8):
        assert client.get("/resources/").status_code == 200


@pytest.mark.parametrize("count", [5, 50])
def test_the_resource_list_api_and_page_do_not_grow_with_resources(
    client, api, requester, admin_user, atlas, count, django_assert_max_num_queries
):
    """Before the sections were prefetched, each resource cost a query for its lease, objects,
    releases and connection (254-278 queries for a page of 100)."""
    make_resources(atlas, requester, count)
    for user in (requester, admin_user):
        api.as_(user)
        with django_assert_max_num_queries(10):
            body = api.get("/api/v1/resources/").json()
        assert len(body["results"]) == min(3 * count, 100)
        by_kind = {r["kind"]: r for r in body["results"]}
        assert by_kind["namespace"]["lease"]["state"] == "active"
        assert by_kind["database"]["connection"] is not None
        assert [r["number"] for r in by_kind["app"]["releases"]] == [1]
        assert by_kind["app"]["objects"][0]["kind"] == "ConfigMap"
        client.force_login(user)
        with django_assert_max_num_queries(8):
            assert client.get("/resources/").status_code == 200


def test_the_api_pages_cost_the_same_queries_at_any_size(api, requester, approver, admin_user, atlas):
    """Exactly as many queries for a page of 6 rows as for a full page of 100 (of 180), for each persona
    (the test client skips the token check: what is counted is the list itself):
    nothing is read per row (no lazy `display_name`, owner, lease, creating request, steps or events)."""
    from django.test.utils import CaptureQueriesContext

    def counts():
        out = {}
        for user in (requester, approver, admin_user):
            api.as_(user)
            for path in ("/api/v1/requests/", "/api/v1/resources/"):
                assert api.get(path).status_code == 200  # the token check's first call does more
                with CaptureQueriesContext(connection) as ctx:
                    assert api.get(path).status_code == 200
                out[(user.username, path)] = len(ctx.captured_queries)
        return out

    def with_chains():
        for request in ResourceRequest.objects.filter(approval_chain__isnull=True):
            chain = ApprovalChain.objects.create(request=request, rule="default")
            step = ApprovalStep.objects.create(
                chain=chain, request=request, order=0, name="platform", group="platform-approvers", state="approved"
            )
            Decision.objects.create(step=step, approver=approver, verdict="approve")

    make_resources(atlas, requester, 2)
    with_chains()
    small = counts()
    make_resources(atlas, requester, 58, start=2)
    with_chains()
    assert len(api.get("/api/v1/resources/").json()["results"]) == 100
    assert counts() == small
    assert max(small.values()) <= 10


@pytest.mark.parametrize("count", [5, 50])
def test_the_request_page_does_not_grow_with_other_requests(
    client, requester, atlas, count, django_assert_max_num_queries
):
    first = make_requests(atlas, requester, count)
    client.force_login(requester)
    with django_assert_max_num_queries(20):
        assert client.get(f"/requests/{first.pk}/").status_code == 200


def test_the_api_lists_page_without_counting(api, requester, atlas):
    """`next` leads through every row once, newest first, and no `COUNT(*)` is run."""
    make_requests(atlas, requester, 7)
    api.as_(requester)
    seen, url = [], "/api/v1/requests/?limit=3"
    while url:
        body = api.get(url).json()
        assert body["count"] is None
        seen += [r["name"] for r in body["results"]]
        url = body["next"]
    assert seen == [f"ns{i}" for i in reversed(range(7))]
    assert api.get("/api/v1/requests/?limit=3&offset=3").json()["previous"] is not None
    assert api.get("/api/v1/resources/?limit=5&offset=5").json()["next"] is None


def test_the_api_lists_filter_by_name(api, requester, atlas, zephyr, outsider):
    make_requests(atlas, requester, 3)
    active_namespace(zephyr, outsider, name="ns1-other")
    api.as_(requester)
    assert [r["name"] for r in api.get("/api/v1/requests/?search=NS1").json()["results"]] == ["ns1"]
    assert [r["name"] for r in api.get("/api/v1/resources/?search=ns2").json()["results"]] == ["ns2"]
    assert api.get("/api/v1/requests/?search=" + "x" * 64).status_code == 400


def test_an_approver_sees_the_requests_their_groups_decide_once(api, requester, approver, atlas):
    """Visibility through approval steps is a semi-join: a request with two steps for the same group
    is listed once."""
    from approvals.models import ApprovalChain, ApprovalStep

    make_requests(atlas, requester, 2)
    request = ResourceRequest.objects.get(name="ns0")
    chain = ApprovalChain.objects.create(request=request, rule="default")
    for order in (1, 2):
        ApprovalStep.objects.create(chain=chain, request=request, order=order, name="p", group="platform-approvers")
    api.as_(approver)
    assert [r["name"] for r in api.get("/api/v1/requests/").json()["results"]] == ["ns0"]


def test_the_web_lists_page_and_filter(client, requester, atlas, zephyr, outsider, admin_user):
    make_requests(atlas, requester, 55)
    active_namespace(zephyr, outsider, name="other")
    client.force_login(requester)
    first = client.get("/requests/").content.decode()
    # Newest first: ns54 down to ns5 on the first page, ns4 to ns0 on the next.
    assert "ns54" in first and "ns5<" in first and "ns4<" not in first and "other" not in first
    # "Older" carries a cursor (the last row's time and id), not an offset: the page reads from there.
    older = re.search(r'href="\?(after=[^"]+)" rel="next"', first).group(1)
    second = client.get(f"/requests/?{older}").content.decode()
    assert "ns4<" in second and "ns5<" not in second and 'rel="next"' not in second and 'rel="prev"' in second
    older = re.search(r'href="\?(after=[^"]+)" rel="next"', client.get("/resources/").content.decode()).group(1)
    assert "ns4<" in client.get(f"/resources/?{older}").content.decode()
    # Search by name, filters by state, kind and team, as the API has them; bad values are ignored.
    searched = client.get("/requests/?search=ns12").content.decode()
    assert "ns12" in searched and "ns11" not in searched
    assert "ns1<" not in client.get("/requests/?state=pending_approval").content.decode()
    assert "ns1<" not in client.get("/resources/?kind=database").content.decode()
    assert "ns54<" in client.get("/resources/?kind=namespace&team=atlas&state=active").content.decode()
    junk_cursors = ("?after=-4", "?after=x.y", "?after=99999999999999999999.0", "?before=1.not-a-uuid")
    for junk in (*junk_cursors, "?state=nope", "?environment=moon", "?search=" + "x" * 300):
        assert client.get("/requests/" + junk).status_code == 200
        assert client.get("/resources/" + junk).status_code == 200
    client.force_login(admin_user)
    assert "other" in client.get("/resources/?team=zephyr").content.decode()
    assert "ns1<" not in client.get("/resources/?team=zephyr").content.decode()


def test_the_lease_dashboard_is_bounded(client, requester, atlas, django_assert_max_num_queries, monkeypatch):
    """Each section shows at most DASHBOARD_ROWS leases, says when there are more, and the chart is
    counted by the database."""
    from leases import selectors

    monkeypatch.setattr(selectors, "DASHBOARD_ROWS", 3)
    now = timezone.now()
    for i in range(5):
        namespace = active_namespace(atlas, requester, name=f"ns{i}")
        LeaseFactory(resource=namespace, expires_at=now + timedelta(days=1, hours=i))
    client.force_login(requester)
    with django_assert_max_num_queries(13):  # a count only for a full section
        page = client.get("/leases/").content.decode()
    assert page.count("atlas-ns") == 3 and "The first 3 of 5 are shown" in page
    assert "/resources/?expiring_within=7" in page  # where all of them are, a page at a time
    assert "atlas-ns4" in client.get("/resources/?expiring_within=7").content.decode()
    assert 'title="week 1: 5"' in page and 'title="week 2: 0"' in page


def test_the_lists_read_their_sections_without_joining_every_listed_row(api, requester, admin_user, atlas):
    """Steps, decisions, objects and releases were prefetched in their models' default order, which starts
    with `request` or `resource`: each query joined every request (or resource) in the table to sort by
    its creation, on every page (a merge over 100k rows). They are read by the page's keys alone now."""
    make_resources(atlas, requester, 3)
    for request in ResourceRequest.objects.all():
        chain = ApprovalChain.objects.create(request=request, rule="default")
        step = ApprovalStep.objects.create(
            chain=chain, request=request, order=0, name="platform", group="platform-approvers", state="approved"
        )
        Decision.objects.create(step=step, approver=admin_user, verdict="approve")
    api.as_(admin_user)
    with CaptureQueriesContext(connection) as ctx:
        requests = api.get("/api/v1/requests/").json()["results"]
        resources = api.get("/api/v1/resources/").json()["results"]
    sections = re.compile(
        r'FROM "(approvals_approvalstep|approvals_decision|provisioning_managedobject|provisioning_release)"'
    )
    reads = [q["sql"] for q in ctx.captured_queries if sections.search(q["sql"])]
    assert len(reads) == 4  # one each; the decisions come with who decided
    for sql in reads:
        assert "requests_app_resourcerequest" not in sql
        assert '"requests_app_resource"' not in sql
    assert requests[0]["approval"]["steps"][0]["decisions"][0]["approver"] == admin_user.username
    by_kind = {r["kind"]: r for r in resources}
    assert by_kind["app"]["releases"][0]["number"] == 1
    assert by_kind["namespace"]["objects"][0]["kind"] == "ConfigMap"
