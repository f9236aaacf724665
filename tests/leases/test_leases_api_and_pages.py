"""The lease parts of the API and the web: extend (200 / 202), expiring_within, dashboard, forecast, and
the database clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leases.models import Lease
from leases.services.handover import hand_over_departed
from leases.services.opening import database_now, lease_open
from leases.services.reclaim_pass import reclaim_pass
from leases.services.report import ReclaimReport
from requests_app.models import ResourceRequest
from tests.factories import active_namespace

pytestmark = pytest.mark.django_db


@pytest.fixture
def leased(atlas, requester):
    """An active namespace with a lease, without a cluster (the extension re-stamp is then skipped)."""
    resource = active_namespace(atlas, requester, name="checkout")
    lease_open(resource=resource)
    return resource


def extend_url(resource):
    return f"/api/v1/resources/{resource.pk}/extend/"


def test_an_extension_within_policy_is_a_200_with_the_new_expiry(api, leased, teammate, settings):
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"  # the re-stamp fails; the extension stands
    before = Lease.objects.get(resource=leased).expires_at
    response = api.as_(teammate).post(extend_url(leased), {"days": 7, "justification": "demo"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["lease"]["extensions"] == 1
    assert Lease.objects.get(resource=leased).expires_at == before + timedelta(days=7)


def test_an_extension_beyond_policy_is_a_202_with_an_extend_request(api, leased, requester, settings):
    settings.LEASE_MAX_TOTAL_DAYS = 15
    response = api.as_(requester).post(extend_url(leased), {"days": 7, "justification": "quarter end"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["action"], body["state"], body["resource"]) == ("extend", "pending_approval", str(leased.pk))
    assert body["approval"]["steps"][0]["group"] == "platform-approvers"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"days": 0, "justification": "x"}, "days"),
        ({"days": 91, "justification": "x"}, "days"),
        ({"days": 5}, "justification"),
        ({"days": "soon", "justification": "x"}, "days"),
    ],
)
def test_bad_extensions_are_400s(api, leased, requester, body, field):
    response = api.as_(requester).post(extend_url(leased), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Lease.objects.get(resource=leased).extensions == 0


def test_outsiders_get_404_for_extend_and_release(api, leased, outsider):
    assert (
        api.as_(outsider).post(extend_url(leased), {"days": 1, "justification": "x"}, format="json").status_code == 404
    )
    assert api.post(f"/api/v1/resources/{leased.pk}/release/").status_code == 404
    assert api.get(f"/api/v1/resources/{leased.pk}/").status_code == 404


def test_expiring_within_filters_by_lease_expiry(api, leased, atlas, requester):
    later = active_namespace(atlas, requester, name="later")
    lease_open(resource=later)
    Lease.objects.filter(resource=later).update(expires_at=timezone.now() + timedelta(days=40))
    api.as_(requester)
    ids = [r["id"] for r in api.get("/api/v1/resources/", {"expiring_within": 14}).json()["results"]]
    assert ids == [str(leased.pk)]
    assert len(api.get("/api/v1/resources/", {"expiring_within": 60}).json()["results"]) == 2
    assert api.get("/api/v1/resources/", {"expiring_within": "soon"}).status_code == 400


def test_the_dashboard_and_forecast_show_what_is_coming(client, leased, requester):
    Lease.objects.filter(resource=leased).update(expires_at=timezone.now() + timedelta(days=3))
    client.force_login(requester)
    page = client.get("/leases/").content.decode()
    assert "atlas-checkout" in page.split("Expiring within 30 days")[0]
    assert 'name="days"' in page
    Lease.objects.filter(resource=leased).update(expires_at=timezone.now() - timedelta(hours=1))
    forecast = client.get("/leases/forecast/").content.decode()
    assert "atlas-checkout" in forecast.split("Lease over: quarantined")[1]
    assert Lease.objects.get(resource=leased).state == "active"


def test_the_forecast_is_bounded_and_runs_no_pass(client, atlas, requester, settings, django_assert_max_num_queries):
    """Its query count does not grow with the leases due, it lists the first rows with the total and what
    the cap leaves for a later pass, and it changes nothing (no pass runs, no notice is recorded)."""
    from leases.selectors import FORECAST_ROWS

    settings.RECLAIM_MAX_PER_RUN = 2
    now = database_now()

    def grow(start: int, count: int) -> None:
        for i in range(start, start + count):
            resource = active_namespace(atlas, requester, name=f"ns{i}")
            lease_open(resource=resource)
            Lease.objects.filter(resource=resource).update(
                state="grace", grace_until=now - timedelta(minutes=i + 1), expires_at=now - timedelta(days=1)
            )
        for i in range(start, start + count):  # and as many crossing a notice threshold
            resource = active_namespace(atlas, requester, name=f"soon{i}")
            lease = lease_open(resource=resource)
            lease.expires_at = now + timedelta(hours=2)
            lease.save()

    client.force_login(requester)
    grow(0, 3)
    with django_assert_max_num_queries(30) as few:
        page = client.get("/leases/forecast/").content.decode()
    assert 'Grace over: backed up (databases) and deleted, at the next pass <span class="muted">(3)' in page
    assert page.count("waits for a later pass") == 1
    grow(3, FORECAST_ROWS + 5)
    with django_assert_max_num_queries(len(few.captured_queries) + 6):  # + at most a count per section (6)
        page = client.get("/leases/forecast/").content.decode()
    total = FORECAST_ROWS + 8
    assert f"The first {FORECAST_ROWS} of {total} are shown; a pass deletes at most 2" in page
    assert "Expiry notices, at the next pass" in page
    assert Lease.objects.filter(state="grace").count() == total
    assert not Lease.objects.exclude(notices_sent=[]).exists()


def test_the_forecast_says_when_nothing_is_due(client, leased, requester):
    Lease.objects.filter(resource=leased).update(expires_at=timezone.now() + timedelta(days=60), next_notice_at=None)
    client.force_login(requester)
    assert "Nothing is due" in client.get("/leases/forecast/").content.decode()


def test_the_forecast_shows_outsiders_nothing_of_other_teams(client, leased, outsider):
    Lease.objects.filter(resource=leased).update(expires_at=timezone.now() - timedelta(hours=1))
    client.force_login(outsider)
    assert "atlas-checkout" not in client.get("/leases/forecast/").content.decode()


@pytest.mark.integration  # needs the Kubernetes API server
def test_a_worker_whose_clock_runs_ahead_never_reclaims_early(leased, monkeypatch):
    """The pass takes `now` from the database: a skewed or mis-zoned worker clock does not matter."""
    lease = Lease.objects.get(resource=leased)
    Lease.objects.filter(pk=lease.pk).update(expires_at=database_now() + timedelta(hours=2))
    monkeypatch.setattr(timezone, "now", lambda: database_now() + timedelta(days=30))
    report = reclaim_pass()
    assert report.to_grace == []
    assert Lease.objects.get(pk=lease.pk).state == "active"
    assert abs(report.now - database_now()) < timedelta(minutes=1)


def test_extension_pages_are_post_only_and_refuse_bad_days(client, leased, requester):
    client.force_login(requester)
    assert client.get(f"/resources/{leased.pk}/extend/").status_code == 405
    response = client.post(f"/resources/{leased.pk}/extend/", {"days": "x", "justification": "y"}, follow=True)
    assert "whole number" in response.content.decode()
    assert ResourceRequest.objects.filter(action="extend").count() == 0


def test_a_resource_handed_to_the_team_shows_a_null_owner_owned_by_the_team(api, leased, requester, teammate):
    assert api.as_(teammate).get(f"/api/v1/resources/{leased.pk}/").json()["owned_by"] == "user"
    requester.groups.clear()
    report = ReclaimReport(now=database_now(), dry_run=False)
    hand_over_departed(dry_run=False, report=report)
    assert len(report.handed_over) == 1

    body = api.as_(teammate).get(f"/api/v1/resources/{leased.pk}/").json()
    assert (body["owner"], body["owned_by"]) == (None, "team")
    listed = api.get("/api/v1/resources/").json()["results"]
    assert [(r["owner"], r["owned_by"]) for r in listed] == [(None, "team")]
